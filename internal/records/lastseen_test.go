package records_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/records"
)

// TestSessionLastSeen: reading only last_seen_at of a session record gives
// what decoding it whole gives (linkd.SessionLastSeen), events or not,
// last_seen_at or not.
func TestSessionLastSeen(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	events := []*linkdv1.LinkEvent{
		{EventName: "OPEN", Timestamp: timestamppb.New(t0.AddDate(-25, 0, 0))},
		{EventName: "HANDOFF", Timestamp: timestamppb.New(t0.AddDate(-25, 0, 1)), ViewName: "CONNECTED"},
	}
	for name, s := range map[string]*linkdv1.LinkSession{
		"LastSeen":        {LinkSessionId: "s1", Events: events, FirstSeenAt: timestamppb.New(t0), LastSeenAt: timestamppb.New(t0.Add(time.Hour))},
		"LastSeenOnly":    {LastSeenAt: timestamppb.New(t0.Add(time.Nanosecond))},
		"NoLastSeen":      {LinkSessionId: "s2", Events: events, FirstSeenAt: timestamppb.New(t0)},
		"NoLastSeenEmpty": {LinkSessionId: "s3", FirstSeenAt: timestamppb.New(t0)},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := proto.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := records.SessionLastSeen(v)
			if want := linkd.SessionLastSeen(s); err != nil || !got.Equal(want) {
				t.Errorf("SessionLastSeen = %v, %v; want %v", got, err, want)
			}
		})
	}
	if _, err := records.SessionLastSeen([]byte{0x4a, 0x05, 0x08}); err == nil {
		t.Error("SessionLastSeen of a torn value: no error")
	}
}
