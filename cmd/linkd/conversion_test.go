package main

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// exitEventURL builds an EXIT event redirect.
func exitEventURL(sessionID, exitStatus, errorCode string, at time.Time) string {
	return "plaidlink://event?event_name=EXIT&exit_status=" + exitStatus + "&error_code=" + errorCode +
		"&link_session_id=" + sessionID + "&timestamp=" + at.UTC().Format("2006-01-02T15:04:05.000Z")
}

// TestLinkd_LinkConversion submits a fixture of sessions, their redirects
// shuffled, and compares the report with counts made by hand.
func TestLinkd_LinkConversion(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, publicToken := mustLink(t, c, "user-1")
		t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		urls := []string{
			// A converts: HANDOFF, then connected.
			eventURL("OPEN", "", "A", m(1)),
			eventURL("TRANSITION_VIEW", "CONSENT", "A", m(2)),
			eventURL("TRANSITION_VIEW", "CREDENTIAL", "A", m(3)),
			eventURL("HANDOFF", "", "A", m(5)),
			connectedURL(publicToken, "A"),
			// B gives up at CREDENTIAL with a wrong password.
			eventURL("OPEN", "", "B", m(10)),
			eventURL("TRANSITION_VIEW", "CONSENT", "B", m(11)),
			eventURL("TRANSITION_VIEW", "CREDENTIAL", "B", m(12)),
			exitEventURL("B", "requires_credentials", "INVALID_CREDENTIALS", m(13)),
			exitURL("requires_credentials", "ITEM_ERROR", "INVALID_CREDENTIALS", "B"),
			// C closes Link at CONSENT: an exit with no status and no error.
			eventURL("OPEN", "", "C", m(20)),
			eventURL("TRANSITION_VIEW", "CONSENT", "C", m(21)),
			"plaidlink://exit?link_session_id=C",
			// D meets a bank outage at CREDENTIAL; only the EXIT event arrives.
			eventURL("OPEN", "", "D", m(30)),
			eventURL("TRANSITION_VIEW", "SELECT_INSTITUTION", "D", m(31)),
			eventURL("TRANSITION_VIEW", "CREDENTIAL", "D", m(32)),
			exitEventURL("D", "requires_credentials", "INSTITUTION_DOWN", m(33)),
			// E lost its OPEN but reached HANDOFF.
			eventURL("HANDOFF", "", "E", m(40)),
			// F started before the window, G at its (exclusive) end.
			eventURL("TRANSITION_VIEW", "CONSENT", "F", m(1)),
			eventURL("OPEN", "", "F", m(-1)),
			eventURL("OPEN", "", "G", m(60)),
		}
		rand.New(rand.NewPCG(3, 3)).Shuffle(len(urls), func(i, j int) { urls[i], urls[j] = urls[j], urls[i] })
		for _, u := range urls {
			if _, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken()}); err != nil {
				t.Fatalf("SubmitRedirect(%s): %v", u, err)
			}
		}

		got, err := c.GetLinkConversion(ctx, &linkdv1.GetLinkConversionRequest{Since: timestamppb.New(t0), Until: timestamppb.New(m(60))})
		if err != nil {
			t.Fatalf("GetLinkConversion: %v", err)
		}
		want := &linkdv1.GetLinkConversionResponse{
			Since:             timestamppb.New(t0),
			Until:             timestamppb.New(m(60)),
			Sessions:          5, // A B C D E
			SessionsOpened:    4, // A B C D
			SessionsConverted: 2, // A E
			ConversionRate:    0.4,
			ExitsByStatus:     map[string]int64{"requires_credentials": 2, "UNKNOWN": 1},
			ExitsByErrorCode:  map[string]int64{"INVALID_CREDENTIALS": 1, "INSTITUTION_DOWN": 1},
			AbandonedAtView:   map[string]int64{"CREDENTIAL": 2, "CONSENT": 1},
		}
		if !proto.Equal(got, want) {
			t.Errorf("conversion:\n got %v\nwant %v", got, want)
		}

		_, err = c.GetLinkConversion(ctx, &linkdv1.GetLinkConversionRequest{Since: timestamppb.New(m(60)), Until: timestamppb.New(t0)})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "since" {
			t.Errorf("field = %q, want since", badRequestField(st))
		}
	})
}

// TestLinkd_Retention restarts linkd after the retention has passed for
// one session but not another. Retention counts by linkd's clock, not by
// the event timestamps of the end user's device: a phone whose clock
// reset to 2001 is not pruned while linkd still hears from it, and one
// whose clock runs a century ahead is pruned when linkd has not.
func TestLinkd_Retention(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	ts := mustStartServerIn(t, dir, clk.Now, "LINKD_RETENTION=24h")
	c := ts.GRPC(t)
	tok, _ := mustLink(t, c, "user-1")
	submit := func(session string, device time.Time) {
		t.Helper()
		if _, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: eventURL("OPEN", "", session, device), LinkToken: tok.GetLinkToken()}); err != nil {
			t.Fatal(err)
		}
	}
	submit("sess-old", clk.Now())
	submit("sess-ahead", clk.Now().AddDate(100, 0, 0))
	clk.Advance(20 * time.Hour)
	submit("sess-new", clk.Now())
	submit("sess-reset", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	ts.conn.Close()
	ts.conn = nil
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(5 * time.Hour)
	ts2 := mustStartServerIn(t, dir, clk.Now, "LINKD_RETENTION=24h")
	c2 := ts2.GRPC(t)
	// The first prune runs in the background as linkd starts.
	for _, id := range []string{"sess-old", "sess-ahead"} {
		var err error
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
			if _, err = c2.GetLinkSession(context.Background(), &linkdv1.GetLinkSessionRequest{LinkSessionId: id}); err != nil {
				break
			}
		}
		if st := wantCode(t, err, codes.NotFound); st == nil {
			t.Errorf("%s, last seen 25h ago, was not pruned", id)
		}
	}
	for _, id := range []string{"sess-new", "sess-reset"} {
		if _, err := c2.GetLinkSession(context.Background(), &linkdv1.GetLinkSessionRequest{LinkSessionId: id}); err != nil {
			t.Errorf("%s, seen 5h ago, pruned: %v", id, err)
		}
	}
}
