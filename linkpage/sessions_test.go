package linkpage

import (
	"fmt"
	"testing"
	"time"
)

// TestPage_startSession_Bounded: reloading the page, which needs no
// credential, cannot grow the session table without end.
func TestPage_startSession_Bounded(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	now := t0
	p := &Page{now: func() time.Time { return now }, sessions: map[string]*session{}, oauth: map[string]*oauthState{}}
	for i := range 3 * maxSessionsPerToken {
		now = t0.Add(time.Duration(i) * time.Second)
		p.startSession(fmt.Sprintf("s%d", i), "link-sandbox-a")
	}
	p.startSession("other", "link-sandbox-b")
	if n := len(p.sessions); n != maxSessionsPerToken+1 {
		t.Fatalf("sessions = %d, want %d for the reloaded token plus 1", n, maxSessionsPerToken+1)
	}
	newest := fmt.Sprintf("s%d", 3*maxSessionsPerToken-1)
	if p.sessions[newest] == nil || p.sessions["s0"] != nil || p.sessions["other"] == nil {
		t.Errorf("kept %v; want the newest of token a and token b's", keys(p.sessions))
	}
}

func keys(m map[string]*session) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
