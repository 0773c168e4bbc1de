package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/seal"
)

// Run runs the conformance suite against the backend open opens, one fresh
// backend per subtest.
func Run(t *testing.T, open OpenFunc) {
	fresh := func(t *testing.T) linkd.Store {
		t.Helper()
		return open(t, MustSealer(t, false)).Store
	}
	t.Run("LinkToken", func(t *testing.T) { testLinkToken(t, fresh) })
	t.Run("RenewLinkToken", func(t *testing.T) { testRenewLinkToken(t, fresh) })
	t.Run("HostedChecks", func(t *testing.T) { testHostedChecks(t, fresh) })
	t.Run("SettleLinkToken", func(t *testing.T) { testSettleLinkToken(t, fresh) })
	t.Run("UpdateLinkSession", func(t *testing.T) { testUpdateLinkSession(t, fresh) })
	t.Run("LinkSessions", func(t *testing.T) { testLinkSessions(t, fresh) })
	t.Run("ClaimExchange", func(t *testing.T) { testClaimExchange(t, fresh) })
	t.Run("ClaimExchangeLink", func(t *testing.T) { testClaimExchangeLink(t, fresh) })
	t.Run("PutItem", func(t *testing.T) { testPutItem(t, fresh) })
	t.Run("UpdateItem", func(t *testing.T) { testUpdateItem(t, fresh) })
	t.Run("DeleteItem", func(t *testing.T) { testDeleteItem(t, fresh) })
	t.Run("DeleteUserRecords", func(t *testing.T) { testDeleteUserRecords(t, fresh) })
	t.Run("RefreshQueue", func(t *testing.T) { testRefreshQueue(t, fresh) })
	t.Run("ItemsAfter", func(t *testing.T) { testItemsAfter(t, fresh) })
	t.Run("RecordWebhook", func(t *testing.T) { testRecordWebhook(t, fresh) })
	t.Run("ListWebhooks", func(t *testing.T) { testListWebhooks(t, fresh) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, fresh) })
	t.Run("TryLease", func(t *testing.T) { testTryLease(t, fresh) })
	t.Run("LeaseCursor", func(t *testing.T) { testLeaseCursor(t, fresh) })
	t.Run("Check", func(t *testing.T) {
		if err := fresh(t).Check(context.Background()); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("ContextDone", func(t *testing.T) { testContextDone(t, fresh) })
	t.Run("ErrInvalidEmptyID", func(t *testing.T) { testEmptyIDs(t, fresh) })
	t.Run("Concurrent", func(t *testing.T) {
		s := fresh(t)
		raceSession(t, s, s)
	})
	t.Run("ConcurrentSessionsPerLinkToken", func(t *testing.T) {
		s := fresh(t)
		raceSessionBound(t, s, s)
	})
	t.Run("ResealAccessTokens", func(t *testing.T) { testReseal(t, open) })
	t.Run("ResealAccessTokensBatches", func(t *testing.T) { testResealBatches(t, open) })
	t.Run("SecretsNotInPlain", func(t *testing.T) { testSecretsNotInPlain(t, open) })
}

func testLinkToken(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	tok := &storagev1.StoredLinkToken{LinkToken: "link-token-1", ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(3600)}
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		if err := s.PutLinkToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetLinkToken(ctx, "link-token-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, tok)
	})
	t.Run("ErrConflict", func(t *testing.T) {
		s := fresh(t)
		if err := s.PutLinkToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		wantCode(t, s.PutLinkToken(ctx, tok), linkd.ECONFLICT)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := fresh(t).GetLinkToken(ctx, "link-token-nope")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		err := fresh(t).PutLinkToken(ctx, &storagev1.StoredLinkToken{ClientUserId: "user-1"})
		wantField(t, err, "link_token")
	})
}

func testRenewLinkToken(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	token := func(name string, expires int) *storagev1.StoredLinkToken {
		return &storagev1.StoredLinkToken{LinkToken: name, ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(expires)}
	}
	withDead := func(t *testing.T) linkd.Store {
		s := fresh(t)
		if err := s.PutLinkToken(ctx, token("dead", 10)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("OK", func(t *testing.T) {
		s := withDead(t)
		got, err := s.RenewLinkToken(ctx, "dead", token("fresh-1", 3600), at(20))
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, token("fresh-1", 3600))
		if stored, err := s.GetLinkToken(ctx, "fresh-1"); err != nil {
			t.Fatalf("fresh token not stored as a link token: %v", err)
		} else {
			wantProto(t, stored, token("fresh-1", 3600))
		}
		r, err := s.LinkTokenRenewal(ctx, "dead", at(30))
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, r, token("fresh-1", 3600))
	})
	// A second renewal while the first is alive gets the first, and its
	// own token is not stored.
	t.Run("EarlierStands", func(t *testing.T) {
		s := withDead(t)
		if _, err := s.RenewLinkToken(ctx, "dead", token("fresh-1", 3600), at(20)); err != nil {
			t.Fatal(err)
		}
		got, err := s.RenewLinkToken(ctx, "dead", token("fresh-2", 3600), at(30))
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, token("fresh-1", 3600))
		_, err = s.GetLinkToken(ctx, "fresh-2")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("ExpiredRenewalReplaced", func(t *testing.T) {
		s := withDead(t)
		if _, err := s.RenewLinkToken(ctx, "dead", token("fresh-1", 100), at(20)); err != nil {
			t.Fatal(err)
		}
		_, err := s.LinkTokenRenewal(ctx, "dead", at(200))
		wantCode(t, err, linkd.ENOTFOUND)
		got, err := s.RenewLinkToken(ctx, "dead", token("fresh-2", 3600), at(200))
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, token("fresh-2", 3600))
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		s := fresh(t)
		_, err := s.RenewLinkToken(ctx, "dead-nope", token("fresh-1", 3600), at(20))
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.LinkTokenRenewal(ctx, "dead-nope", at(20))
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

// testHostedChecks: link tokens stored with hosted_check_at come back from
// HostedLinkTokensDue once due, longest due first; a moved check moves,
// an ended one and a pruned token are gone; renewals are indexed too.
func testHostedChecks(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	hosted := func(name string, check int) *storagev1.StoredLinkToken {
		return &storagev1.StoredLinkToken{LinkToken: name, ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(3600), HostedCheckAt: ts(check)}
	}
	names := func(ts []*storagev1.StoredLinkToken) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.GetLinkToken())
		}
		return out
	}
	due := func(t *testing.T, s linkd.Store, now int, want ...string) {
		t.Helper()
		got, err := s.HostedLinkTokensDue(ctx, at(now), 10)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got), want) {
			t.Fatalf("HostedLinkTokensDue(%d) = %q, want %q", now, names(got), want)
		}
	}
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		for _, tok := range []*storagev1.StoredLinkToken{hosted("hosted-b", 200), hosted("hosted-a", 100),
			{LinkToken: "webview", ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(3600)}} {
			if err := s.PutLinkToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		due(t, s, 50)
		due(t, s, 100, "hosted-a")
		due(t, s, 300, "hosted-a", "hosted-b")
		if got, _ := s.HostedLinkTokensDue(ctx, at(300), 1); len(got) != 1 {
			t.Fatalf("limit 1: %d tokens", len(got))
		}
		if err := s.SetHostedLinkTokenCheck(ctx, "hosted-a", at(400)); err != nil {
			t.Fatal(err)
		}
		due(t, s, 300, "hosted-b")
		due(t, s, 400, "hosted-b", "hosted-a")
		if got, _ := s.GetLinkToken(ctx, "hosted-a"); !got.GetHostedCheckAt().AsTime().Equal(at(400)) {
			t.Fatalf("record's hosted_check_at = %v, want the moved check", got.GetHostedCheckAt())
		}
		if err := s.SetHostedLinkTokenCheck(ctx, "hosted-b", time.Time{}); err != nil {
			t.Fatal(err)
		}
		due(t, s, 1000, "hosted-a")
		if got, _ := s.GetLinkToken(ctx, "hosted-b"); got.GetHostedCheckAt() != nil {
			t.Fatalf("ended check still in the record: %v", got.GetHostedCheckAt())
		}
	})
	t.Run("Renewal", func(t *testing.T) {
		s := fresh(t)
		if err := s.PutLinkToken(ctx, hosted("dead", 100)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RenewLinkToken(ctx, "dead", hosted("fresh", 150), at(20)); err != nil {
			t.Fatal(err)
		}
		due(t, s, 200, "dead", "fresh")
	})
	t.Run("Pruned", func(t *testing.T) {
		s := fresh(t)
		old := hosted("old", 100)
		old.Expiration = ts(50)
		if err := s.PutLinkToken(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prune(ctx, linkd.PruneCutoffs{LinkTokens: at(60)}); err != nil {
			t.Fatal(err)
		}
		due(t, s, 200)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		wantCode(t, fresh(t).SetHostedLinkTokenCheck(ctx, "nope", at(1)), linkd.ENOTFOUND)
	})
}

// testSettleLinkToken: a token's settlement is kept in its record, the
// first one stands, and the rest of the record is untouched.
func testSettleLinkToken(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		tok := &storagev1.StoredLinkToken{LinkToken: "link-token-1", ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(3600)}
		if err := s.PutLinkToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		first := &storagev1.LinkTokenSettlement{State: linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED,
			LinkSessionIds: []string{"sess-1", "sess-2"}, SettledAt: ts(10)}
		if err := s.SettleLinkToken(ctx, "link-token-1", first); err != nil {
			t.Fatal(err)
		}
		later := &storagev1.LinkTokenSettlement{State: linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXPIRED, SettledAt: ts(20)}
		if err := s.SettleLinkToken(ctx, "link-token-1", later); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetLinkToken(ctx, "link-token-1")
		if err != nil {
			t.Fatal(err)
		}
		want := proto.CloneOf(tok)
		want.Settled = first
		wantProto(t, got, want)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		wantCode(t, fresh(t).SettleLinkToken(ctx, "nope", &storagev1.LinkTokenSettlement{}), linkd.ENOTFOUND)
	})
}

func testUpdateLinkSession(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	t.Run("New", func(t *testing.T) {
		s := fresh(t)
		var seen *linkdv1.LinkSession
		got, err := s.UpdateLinkSession(ctx, "sess-1", func(ls *linkdv1.LinkSession) (bool, error) {
			seen = proto.CloneOf(ls)
			ls.LinkToken = "link-token-1"
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, seen, &linkdv1.LinkSession{LinkSessionId: "sess-1"})
		want := &linkdv1.LinkSession{LinkSessionId: "sess-1", LinkToken: "link-token-1"}
		wantProto(t, got, want)
		stored, err := s.GetLinkSession(ctx, "sess-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, stored, want)
	})
	t.Run("Merge", func(t *testing.T) {
		s := fresh(t)
		mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "OPEN", 10))
		mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "HANDOFF", 30))
		got := mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "SELECT_INSTITUTION", 20))
		var names []string
		for _, e := range got.GetEvents() {
			names = append(names, e.GetEventName())
		}
		if want := []string{"OPEN", "SELECT_INSTITUTION", "HANDOFF"}; !slices.Equal(names, want) {
			t.Fatalf("events = %q, want %q", names, want)
		}
	})
	// One event reported by a webview redirect (no event_id) and by a
	// LINK EVENTS webhook (event_id, request_id), in either order, is
	// stored once, with the fields of both.
	t.Run("SameEventFromRedirectAndWebhook", func(t *testing.T) {
		for _, webhookFirst := range []bool{false, true} {
			s := fresh(t)
			fromRedirect := event("sess-1", "OPEN", 10)
			fromWebhook := event("sess-1", "OPEN", 10)
			fromWebhook.GetEvent().EventId, fromWebhook.GetEvent().RequestId = "event-1", "request-1"
			first, second := fromRedirect, fromWebhook
			if webhookFirst {
				first, second = second, first
			}
			mustUpdateSession(t, s, "sess-1", linkd.MergeRedirect("link-token-1", "user-1", first, at(10)))
			mustUpdateSession(t, s, "sess-1", linkd.MergeRedirect("link-token-1", "user-1", second, at(11)))
			stored, err := s.GetLinkSession(ctx, "sess-1")
			if err != nil {
				t.Fatal(err)
			}
			if len(stored.GetEvents()) != 1 || !proto.Equal(stored.GetEvents()[0], fromWebhook.GetEvent()) {
				t.Fatalf("webhook first %v: events = %v; want one, with the webhook's event_id and request_id", webhookFirst, stored.GetEvents())
			}
		}
	})
	// A function reporting no change writes nothing, even what it changed.
	t.Run("NoChange", func(t *testing.T) {
		s := fresh(t)
		if _, err := s.UpdateLinkSession(ctx, "sess-1", noChange[*linkdv1.LinkSession]); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetLinkSession(ctx, "sess-1")
		wantCode(t, err, linkd.ENOTFOUND)
		before := mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "OPEN", 10))
		got, err := s.UpdateLinkSession(ctx, "sess-1", noChange[*linkdv1.LinkSession])
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, before)
		stored, _ := s.GetLinkSession(ctx, "sess-1")
		wantProto(t, stored, before)
	})
	t.Run("FnError", func(t *testing.T) {
		s := fresh(t)
		mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "OPEN", 10))
		// Another link token: MergeRedirect's ECONFLICT comes back as is.
		_, err := s.UpdateLinkSession(ctx, "sess-1", linkd.MergeRedirect("link-token-2", "user-1", event("sess-1", "X", 11), at(11)))
		wantCode(t, err, linkd.ECONFLICT)
		stored, _ := s.GetLinkSession(ctx, "sess-1")
		if len(stored.GetEvents()) != 1 {
			t.Fatalf("failed update wrote: %v", stored)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		_, err := fresh(t).UpdateLinkSession(ctx, "", addEvent("", "OPEN", 1))
		wantField(t, err, "link_session_id")
	})
	t.Run("GetErrNotFound", func(t *testing.T) {
		_, err := fresh(t).GetLinkSession(ctx, "sess-nope")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("ErrRateLimitSessionsPerLinkToken", func(t *testing.T) {
		s := fresh(t)
		mustPutBoundToken(t, s, "link-token-b")
		mustPutBoundToken(t, s, "link-token-c")
		for i := range linkd.MaxSessionsPerLinkToken {
			id := fmt.Sprintf("sess-%02d", i)
			mustUpdateSession(t, s, id, tokenEvent("link-token-b", id, "OPEN", i))
		}
		// A fresh function reporting no change creates nothing to count.
		if _, err := s.UpdateLinkSession(ctx, "sess-nochange", noChange[*linkdv1.LinkSession]); err != nil {
			t.Fatal(err)
		}
		_, err := s.UpdateLinkSession(ctx, "sess-over", tokenEvent("link-token-b", "sess-over", "OPEN", 99))
		wantSessionBound(t, err)
		_, err = s.GetLinkSession(ctx, "sess-over")
		wantCode(t, err, linkd.ENOTFOUND)
		// The sessions it has still take events; another token is not held back.
		if got := mustUpdateSession(t, s, "sess-00", tokenEvent("link-token-b", "sess-00", "HANDOFF", 100)); len(got.GetEvents()) != 2 {
			t.Fatalf("existing session = %v, want its second event", got)
		}
		mustUpdateSession(t, s, "sess-c", tokenEvent("link-token-c", "sess-c", "OPEN", 1))
		wantSessionCount(t, s, "link-token-b", linkd.MaxSessionsPerLinkToken)
		wantSessionCount(t, s, "link-token-c", 1)
		// PutItem files a billed Item's new session past the bound, counted.
		in := newItem("item-1", "user-1", 0)
		in.LinkSessionId = "sess-item"
		mustPutItem(t, s, linkd.NewItem{Item: in, Session: tokenEvent("link-token-b", "sess-item", "HANDOFF", 101)})
		if got, err := s.GetLinkSession(ctx, "sess-item"); err != nil || got.GetItemId() != "item-1" {
			t.Fatalf("PutItem's session = %v, %v; want it stored with item-1", got, err)
		}
		wantSessionCount(t, s, "link-token-b", linkd.MaxSessionsPerLinkToken+1)
	})
}

// tokenEvent returns an update function adding one event of linkToken's
// session, as the service does through linkd.MergeRedirect.
// deviceEvent returns an update function adding an OPEN event that the
// end user's device stamped device, recorded by linkd at(n).
func deviceEvent(sessionID string, device time.Time, n int) func(*linkdv1.LinkSession) (bool, error) {
	r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
		EventName: "OPEN", LinkSessionId: sessionID, Timestamp: timestamppb.New(device),
	}}}
	return linkd.MergeRedirect("link-token-1", "user-1", r, at(n))
}

func tokenEvent(linkToken, sessionID, name string, n int) func(*linkdv1.LinkSession) (bool, error) {
	return linkd.MergeRedirect(linkToken, "user-1", event(sessionID, name, n), at(n))
}

// mustPutBoundToken records a link token of user-1 that expires in four
// hours of the wall clock (a store's clock may be the real one).
func mustPutBoundToken(t *testing.T, s linkd.Store, linkToken string) {
	t.Helper()
	err := s.PutLinkToken(context.Background(), &storagev1.StoredLinkToken{
		LinkToken: linkToken, ClientUserId: "user-1", Expiration: timestamppb.New(time.Now().Add(4 * time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wantSessionBound checks err is the refusal of a session past
// linkd.MaxSessionsPerLinkToken, with the time until the token expires.
func wantSessionBound(t *testing.T, err error) {
	t.Helper()
	var e *linkd.Error
	if !errors.As(err, &e) || e.Code != linkd.ERATELIMIT || e.Reason != linkd.ReasonSessionsPerLinkToken {
		t.Fatalf("err = %v, want ERATELIMIT %s", err, linkd.ReasonSessionsPerLinkToken)
	}
	// The token expires four hours from the wall clock; the store's clock
	// may be a test's fixed one, as early as t0.
	if most := 4*time.Hour + max(time.Since(t0), 0); e.RetryAfter <= 0 || e.RetryAfter > most {
		t.Fatalf("RetryAfter = %v, want the time until the token expires", e.RetryAfter)
	}
}

// wantSessionCount checks the sessions a link token counts.
func wantSessionCount(t *testing.T, s linkd.Store, linkToken string, want int) {
	t.Helper()
	tok, err := s.GetLinkToken(context.Background(), linkToken)
	if err != nil {
		t.Fatal(err)
	}
	if int(tok.GetSessions()) != want {
		t.Fatalf("%s counts %d sessions, want %d", linkToken, tok.GetSessions(), want)
	}
}

// raceSessionBound creates twice MaxSessionsPerLinkToken sessions of one
// link token at once through a and b: exactly the bound are created.
func raceSessionBound(t *testing.T, a, b linkd.Store) {
	mustPutBoundToken(t, a, "link-token-b")
	n := 2 * linkd.MaxSessionsPerLinkToken
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			id := fmt.Sprintf("sess-%02d", i)
			_, errs[i] = s.UpdateLinkSession(context.Background(), id, tokenEvent("link-token-b", id, "OPEN", i))
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
			continue
		}
		wantSessionBound(t, err)
	}
	if created != linkd.MaxSessionsPerLinkToken {
		t.Fatalf("%d sessions created, want %d", created, linkd.MaxSessionsPerLinkToken)
	}
	wantSessionCount(t, a, "link-token-b", linkd.MaxSessionsPerLinkToken)
}

func testLinkSessions(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	// sess-N starts at(N*10).
	fill := func(t *testing.T) linkd.Store {
		s := fresh(t)
		for _, n := range []int{3, 1, 5, 2, 4} {
			id := fmt.Sprintf("sess-%d", n)
			mustUpdateSession(t, s, id, addEvent(id, "OPEN", n*10))
		}
		return s
	}
	t.Run("Window", func(t *testing.T) {
		s := fill(t)
		got, next, err := s.LinkSessions(ctx, at(20), at(40), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"sess-2", "sess-3"}; !slices.Equal(sessionIDs(got), want) || next != "" {
			t.Fatalf("LinkSessions = %q, next %q; want %q and no next page", sessionIDs(got), next, want)
		}
	})
	t.Run("Pages", func(t *testing.T) {
		s := fill(t)
		var all []string
		token := ""
		for range 10 {
			page, next, err := s.LinkSessions(ctx, at(0), at(1000), token, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("page of %d, limit 2", len(page))
			}
			all = append(all, sessionIDs(page)...)
			if token = next; token == "" {
				break
			}
		}
		if want := []string{"sess-1", "sess-2", "sess-3", "sess-4", "sess-5"}; !slices.Equal(all, want) {
			t.Fatalf("pages = %q, want %q", all, want)
		}
	})
	// An earlier event moves a session's start: it is listed once, by the
	// new start.
	t.Run("StartMovesEarlier", func(t *testing.T) {
		s := fill(t)
		mustUpdateSession(t, s, "sess-5", addEvent("sess-5", "EARLIER", 15))
		got, _, err := s.LinkSessions(ctx, at(0), at(1000), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"sess-1", "sess-5", "sess-2", "sess-3", "sess-4"}; !slices.Equal(sessionIDs(got), want) {
			t.Fatalf("LinkSessions = %q, want %q", sessionIDs(got), want)
		}
		late, _, _ := s.LinkSessions(ctx, at(50), at(60), "", 100)
		if len(late) != 0 {
			t.Fatalf("sess-5 still listed at its old start: %q", sessionIDs(late))
		}
	})
}

func testClaimExchange(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	pt := publicToken("1")
	claim := func(owner, user string, now int) linkd.ExchangeClaim {
		return linkd.ExchangeClaim{PublicToken: pt, ClientUserID: user, Owner: owner, Now: at(now), TTL: 30 * time.Second}
	}
	mustClaim := func(t *testing.T, s linkd.Store, c linkd.ExchangeClaim) linkd.ClaimResult {
		t.Helper()
		r, err := s.ClaimExchange(ctx, c)
		if err != nil {
			t.Fatalf("ClaimExchange: %v", err)
		}
		return r
	}
	wantClaimed := func(t *testing.T, r linkd.ClaimResult, earlier bool) {
		t.Helper()
		if !r.Claimed || r.Earlier != earlier || r.Item != nil || r.HeldBy != "" {
			t.Fatalf("claim = %+v, want Claimed with Earlier %v", r, earlier)
		}
	}
	t.Run("Fresh", func(t *testing.T) {
		wantClaimed(t, mustClaim(t, fresh(t), claim("a", "user-1", 0)), false)
	})
	t.Run("Held", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		r := mustClaim(t, s, claim("b", "user-1", 10))
		if r.Claimed || r.HeldBy != "a" || !r.HeldUntil.Equal(at(30)) {
			t.Fatalf("claim = %+v, want held by a until %v", r, at(30))
		}
	})
	t.Run("Reentrant", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		wantClaimed(t, mustClaim(t, s, claim("a", "user-1", 10)), false)
	})
	// The holder vanished: the next claimant takes over and learns that
	// Plaid may have spent the token.
	t.Run("ExpiredTakeover", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		wantClaimed(t, mustClaim(t, s, claim("b", "user-1", 31)), true)
		// a lost it.
		wantCode(t, s.RenewExchangeClaim(ctx, pt, "a", at(32), time.Minute), linkd.ECONFLICT)
	})
	t.Run("ReleaseUnknown", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		if err := s.ReleaseExchangeClaim(ctx, pt, "a", true); err != nil {
			t.Fatal(err)
		}
		wantClaimed(t, mustClaim(t, s, claim("b", "user-1", 1)), true)
	})
	t.Run("ReleaseDefinite", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		if err := s.ReleaseExchangeClaim(ctx, pt, "a", false); err != nil {
			t.Fatal(err)
		}
		wantClaimed(t, mustClaim(t, s, claim("b", "user-1", 1)), false)
	})
	t.Run("ReleaseByOtherIgnored", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		if err := s.ReleaseExchangeClaim(ctx, pt, "b", false); err != nil {
			t.Fatalf("release of a claim not held: %v", err)
		}
		if r := mustClaim(t, s, claim("b", "user-1", 1)); r.HeldBy != "a" {
			t.Fatalf("claim = %+v, want still held by a", r)
		}
	})
	t.Run("Renew", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		if err := s.RenewExchangeClaim(ctx, pt, "a", at(20), time.Minute); err != nil {
			t.Fatal(err)
		}
		if r := mustClaim(t, s, claim("b", "user-1", 40)); r.HeldBy != "a" || !r.HeldUntil.Equal(at(80)) {
			t.Fatalf("claim = %+v, want held by a until %v", r, at(80))
		}
	})
	// A lapsed claim nobody took over is still its owner's to renew: the
	// owner was only slow.
	t.Run("RenewLapsedUntaken", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		if err := s.RenewExchangeClaim(ctx, pt, "a", at(40), time.Minute); err != nil {
			t.Fatalf("renew of a lapsed claim nobody took: %v", err)
		}
		if r := mustClaim(t, s, claim("b", "user-1", 50)); r.HeldBy != "a" {
			t.Fatalf("claim = %+v, want held by a", r)
		}
	})
	t.Run("ErrConflictRenewReleased", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		if err := s.ReleaseExchangeClaim(ctx, pt, "a", true); err != nil {
			t.Fatal(err)
		}
		wantCode(t, s.RenewExchangeClaim(ctx, pt, "a", at(1), time.Minute), linkd.ECONFLICT)
	})
	t.Run("ErrConflictOtherUser", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		_, err := s.ClaimExchange(ctx, claim("b", "user-2", 1))
		wantCode(t, err, linkd.ECONFLICT)
		// Expired or not, the claim stays the first user's.
		_, err = s.ClaimExchange(ctx, claim("b", "user-2", 100))
		wantCode(t, err, linkd.ECONFLICT)
	})
	// PutItem spends the token and removes the claim: the next claim finds
	// the Item, and the old holder no longer holds anything.
	t.Run("PutItemClears", func(t *testing.T) {
		s := fresh(t)
		mustClaim(t, s, claim("a", "user-1", 0))
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 1), PublicToken: pt})
		r := mustClaim(t, s, claim("b", "user-1", 2))
		if r.Claimed || r.Item.GetItemId() != "item-1" {
			t.Fatalf("claim = %+v, want Item item-1", r)
		}
		wantCode(t, s.RenewExchangeClaim(ctx, pt, "a", at(3), time.Minute), linkd.ECONFLICT)
		_, err := s.ClaimExchange(ctx, claim("c", "user-2", 3))
		wantCode(t, err, linkd.ECONFLICT)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		s := fresh(t)
		_, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{ClientUserID: "user-1", Owner: "a", Now: at(0), TTL: time.Second})
		wantField(t, err, "public_token")
		_, err = s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: pt, Owner: "a", Now: at(0), TTL: time.Second})
		wantField(t, err, "client_user_id")
	})
}

// testClaimExchangeLink: a claim with a link is not granted while another
// token's live claim holds a link it repeats, and is again once that
// claim is spent, released or lapsed.
func testClaimExchangeLink(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	link := func(inst string, allUsers bool, accounts ...*linkdv1.Account) *linkd.PendingLink {
		return &linkd.PendingLink{InstitutionID: inst, Accounts: accounts, AllUsers: allUsers}
	}
	checking := &linkdv1.Account{Id: "acc-1", Name: "Plaid Checking", Mask: "0000", Type: "depository"}
	savings := &linkdv1.Account{Name: "Plaid Saving", Mask: "1111"}
	claim := func(t *testing.T, s linkd.Store, n, owner, user string, now int, l *linkd.PendingLink) linkd.ClaimResult {
		t.Helper()
		r, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken(n), ClientUserID: user, Owner: owner,
			Now: at(now), TTL: 30 * time.Second, Link: l})
		if err != nil {
			t.Fatalf("ClaimExchange(%s): %v", n, err)
		}
		return r
	}
	wantClaimed := func(t *testing.T, r linkd.ClaimResult) {
		t.Helper()
		if !r.Claimed || r.Repeats || r.HeldBy != "" || r.Item != nil {
			t.Fatalf("claim = %+v, want Claimed", r)
		}
	}
	wantRepeats := func(t *testing.T, r linkd.ClaimResult, owner string, until int) {
		t.Helper()
		if r.Claimed || !r.Repeats || r.HeldBy != owner || !r.HeldUntil.Equal(at(until)) || r.Item != nil {
			t.Fatalf("claim = %+v, want Repeats, held by %s until %v", r, owner, at(until))
		}
	}
	// user-1's link to ins_3 with Plaid Checking is being exchanged
	// (token 1, owner a); which other links wait for it?
	pendingChecking := func(t *testing.T) linkd.Store {
		s := fresh(t)
		wantClaimed(t, claim(t, s, "1", "a", "user-1", 0, link("ins_3", false, checking)))
		return s
	}
	t.Run("Repeats", func(t *testing.T) {
		for _, tt := range []struct {
			name, user string
			link       *linkd.PendingLink
			repeats    bool
		}{
			{"SameUserSameAccount", "user-1", link("ins_3", false, savings, checking), true},
			{"SameUserNoAccounts", "user-1", link("ins_3", false), true},
			{"SameUserOtherAccount", "user-1", link("ins_3", false, savings), false},
			{"SameUserOtherInstitution", "user-1", link("ins_4", false, checking), false},
			{"OtherUserSameAccount", "user-2", link("ins_3", false, checking), false},
			{"OtherUserSameAccountAllUsers", "user-2", link("ins_3", true, checking), true},
			// Across users only a shared named account counts.
			{"OtherUserNoAccountsAllUsers", "user-2", link("ins_3", true), false},
			{"NoLink", "user-1", nil, false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				s := pendingChecking(t)
				r := claim(t, s, "2", "b", tt.user, 10, tt.link)
				if !tt.repeats {
					wantClaimed(t, r)
					return
				}
				wantRepeats(t, r, "a", 30)
				// Refused, the claim left nothing behind: another owner
				// claims token 2 once token 1 is gone, as a first claim.
				if err := s.ReleaseExchangeClaim(ctx, publicToken("1"), "a", false); err != nil {
					t.Fatal(err)
				}
				r = claim(t, s, "2", "c", tt.user, 11, tt.link)
				if wantClaimed(t, r); r.Earlier {
					t.Fatalf("claim = %+v: a refused claim left a mark", r)
				}
			})
		}
	})
	// The holder claims its own token again: its link is not another's.
	t.Run("Reentrant", func(t *testing.T) {
		s := pendingChecking(t)
		wantClaimed(t, claim(t, s, "1", "a", "user-1", 10, link("ins_3", false, checking)))
		wantRepeats(t, claim(t, s, "2", "b", "user-1", 11, link("ins_3", false, checking)), "a", 40)
	})
	t.Run("PutItemClears", func(t *testing.T) {
		s := pendingChecking(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 1), PublicToken: publicToken("1")})
		wantClaimed(t, claim(t, s, "2", "b", "user-1", 2, link("ins_3", false, checking)))
	})
	for _, unknown := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReleaseClears/unknown=%v", unknown), func(t *testing.T) {
			s := pendingChecking(t)
			if err := s.ReleaseExchangeClaim(ctx, publicToken("1"), "a", unknown); err != nil {
				t.Fatal(err)
			}
			wantClaimed(t, claim(t, s, "2", "b", "user-1", 2, link("ins_3", false, checking)))
			// The released token's own next claim is granted too.
			if r := claim(t, s, "1", "c", "user-1", 3, link("ins_3", false, savings)); !r.Claimed || r.Earlier != unknown {
				t.Fatalf("claim of the released token = %+v, want Claimed, Earlier %v", r, unknown)
			}
		})
	}
	// A claim its holder no longer renews (a crashed replica) holds a
	// repeating link only until it lapses.
	t.Run("Lapsed", func(t *testing.T) {
		s := pendingChecking(t)
		wantRepeats(t, claim(t, s, "2", "b", "user-1", 29, link("ins_3", false, checking)), "a", 30)
		wantClaimed(t, claim(t, s, "2", "b", "user-1", 30, link("ins_3", false, checking)))
	})
	t.Run("Renewed", func(t *testing.T) {
		s := pendingChecking(t)
		if err := s.RenewExchangeClaim(ctx, publicToken("1"), "a", at(20), time.Minute); err != nil {
			t.Fatal(err)
		}
		wantRepeats(t, claim(t, s, "2", "b", "user-1", 40, link("ins_3", false, checking)), "a", 80)
	})
	// Taken over after it lapsed, a token's claim carries the new
	// claimant's link, and only that.
	t.Run("TakeoverMovesLink", func(t *testing.T) {
		s := pendingChecking(t)
		wantClaimed(t, claim(t, s, "1", "b", "user-1", 31, link("ins_4", false, checking)))
		wantClaimed(t, claim(t, s, "2", "c", "user-1", 32, link("ins_3", false, checking)))
		wantRepeats(t, claim(t, s, "3", "c", "user-1", 33, link("ins_4", false, checking)), "b", 61)
	})
	t.Run("DeleteUserRecordsClears", func(t *testing.T) {
		s := pendingChecking(t)
		if _, err := s.DeleteUserRecords(ctx, "user-1", nil); err != nil {
			t.Fatal(err)
		}
		wantClaimed(t, claim(t, s, "2", "b", "user-1", 1, link("ins_3", false, checking)))
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		s := fresh(t)
		_, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken("1"), ClientUserID: "user-1", Owner: "a",
			Now: at(0), TTL: time.Second, Link: link("", false, checking)})
		wantField(t, err, "institution_id")
	})
}

func testPutItem(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		in := newItem("item-1", "user-1", 0)
		in.CreatedAt = nil
		got := mustPutItem(t, s, linkd.NewItem{Item: in, PublicToken: publicToken("1")})
		if got.GetCreatedAt() == nil {
			t.Fatal("created_at not filled in")
		}
		stored, err := s.GetItem(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, stored, got)
		if tok, err := s.AccessToken(ctx, "item-1"); err != nil || tok != accessToken("item-1") {
			t.Fatalf("AccessToken: %v (round trip %v)", err, tok == accessToken("item-1"))
		}
		if byToken, err := s.ItemForPublicToken(ctx, publicToken("1")); err != nil {
			t.Fatal(err)
		} else {
			wantProto(t, byToken, got)
		}
		for what, list := range map[string]func() ([]*linkdv1.Item, error){
			"ListItems":          func() ([]*linkdv1.Item, error) { return s.ListItems(ctx, "user-1") },
			"ItemsAtInstitution": func() ([]*linkdv1.Item, error) { return s.ItemsAtInstitution(ctx, "ins_3") },
		} {
			items, err := list()
			if err != nil || !slices.Equal(itemIDs(items), []string{"item-1"}) {
				t.Fatalf("%s = %q, %v", what, itemIDs(items), err)
			}
		}
	})
	// An institution_id comes from a redirect the service checked, but
	// the store must not turn one it cannot keep into a storage failure,
	// which the exchange retries for ever after Plaid billed it: it is
	// kept as given or refused as EINVALID naming institution_id.
	t.Run("InstitutionIDWithNUL", func(t *testing.T) {
		s := fresh(t)
		in := newItem("item-1", "user-1", 0)
		in.InstitutionId = "ins\x003"
		got, err := s.PutItem(ctx, linkd.NewItem{Item: in, AccessToken: accessToken("item-1")})
		if err != nil {
			var le *linkd.Error
			if !errors.As(err, &le) || le.Code != linkd.EINVALID || le.Field != "institution_id" {
				t.Fatalf("PutItem = %v, want it stored or EINVALID naming institution_id", err)
			}
			return
		}
		stored, err := s.GetItem(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, stored, got)
		if items, err := s.ItemsAtInstitution(ctx, in.InstitutionId); err != nil || !slices.Equal(itemIDs(items), []string{"item-1"}) {
			t.Fatalf("ItemsAtInstitution = %q, %v", itemIDs(items), err)
		}
	})
	t.Run("OldestFirst", func(t *testing.T) {
		s := fresh(t)
		for _, n := range []int{2, 0, 1} {
			id := fmt.Sprintf("item-%d", n)
			mustPutItem(t, s, linkd.NewItem{Item: newItem(id, "user-1", n)})
		}
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-other", "user-2", 5)})
		items, _ := s.ListItems(ctx, "user-1")
		if want := []string{"item-0", "item-1", "item-2"}; !slices.Equal(itemIDs(items), want) {
			t.Fatalf("ListItems = %q, want %q", itemIDs(items), want)
		}
		items, _ = s.ItemsAtInstitution(ctx, "ins_3")
		if want := []string{"item-0", "item-1", "item-2", "item-other"}; !slices.Equal(itemIDs(items), want) {
			t.Fatalf("ItemsAtInstitution = %q, want %q", itemIDs(items), want)
		}
		if none, err := s.ListItems(ctx, "user-nope"); err != nil || len(none) != 0 {
			t.Fatalf("ListItems of nobody = %q, %v", itemIDs(none), err)
		}
	})
	// One transaction: the session is created with the Item's id and the
	// service's update applied, and the refresh is queued.
	t.Run("WithSessionAndRefresh", func(t *testing.T) {
		s := fresh(t)
		in := newItem("item-1", "user-1", 0)
		in.LinkSessionId = "sess-1"
		mustPutItem(t, s, linkd.NewItem{Item: in, Session: addEvent("sess-1", "HANDOFF", 5), RefreshAt: at(100)})
		sess, err := s.GetLinkSession(ctx, "sess-1")
		if err != nil {
			t.Fatal(err)
		}
		if sess.GetItemId() != "item-1" || len(sess.GetEvents()) != 1 {
			t.Fatalf("session = %v, want item_id item-1 and the event", sess)
		}
		if due, _ := s.DueItemRefreshes(ctx, at(100), 10); !slices.Equal(due, []string{"item-1"}) {
			t.Fatalf("DueItemRefreshes = %q, want item-1", due)
		}
	})
	t.Run("SessionRecordedAlready", func(t *testing.T) {
		s := fresh(t)
		mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "OPEN", 1))
		in := newItem("item-1", "user-1", 0)
		in.LinkSessionId = "sess-1"
		mustPutItem(t, s, linkd.NewItem{Item: in})
		if sess, _ := s.GetLinkSession(ctx, "sess-1"); sess.GetItemId() != "item-1" || len(sess.GetEvents()) != 1 {
			t.Fatalf("session = %v, want item_id item-1 and its event", sess)
		}
	})
	// A session keeps the first Item it created while that Item exists.
	t.Run("SessionKeepsFirstItem", func(t *testing.T) {
		s := fresh(t)
		for _, id := range []string{"item-1", "item-2"} {
			in := newItem(id, "user-1", 0)
			in.LinkSessionId = "sess-1"
			mustPutItem(t, s, linkd.NewItem{Item: in, Session: addEvent("sess-1", "HANDOFF", 5)})
		}
		if sess, _ := s.GetLinkSession(ctx, "sess-1"); sess.GetItemId() != "item-1" {
			t.Fatalf("session item_id = %q, want item-1", sess.GetItemId())
		}
		if err := s.DeleteItem(ctx, "item-1"); err != nil {
			t.Fatal(err)
		}
		in := newItem("item-3", "user-1", 0)
		in.LinkSessionId = "sess-1"
		mustPutItem(t, s, linkd.NewItem{Item: in})
		if sess, _ := s.GetLinkSession(ctx, "sess-1"); sess.GetItemId() != "item-3" {
			t.Fatalf("session item_id = %q, want item-3 once item-1 is gone", sess.GetItemId())
		}
	})
	// SessionKey files the Item in that session and leaves the record
	// under the Item's link_session_id (another user's) as it was.
	t.Run("SessionKey", func(t *testing.T) {
		s := fresh(t)
		mustUpdateSession(t, s, "sess-1", linkd.MergeRedirect("link-token-2", "user-2", event("sess-1", "OPEN", 1), at(1)))
		before, err := s.GetLinkSession(ctx, "sess-1")
		if err != nil {
			t.Fatal(err)
		}
		in := newItem("item-1", "user-1", 0)
		in.LinkSessionId = "sess-1"
		mustPutItem(t, s, linkd.NewItem{Item: in, SessionKey: "sess-1~own", Session: addEvent("sess-1", "HANDOFF", 5)})
		if after, _ := s.GetLinkSession(ctx, "sess-1"); !proto.Equal(before, after) {
			t.Fatalf("session under the Item's link_session_id changed:\n%v\n%v", before, after)
		}
		own, err := s.GetLinkSession(ctx, "sess-1~own")
		if err != nil || own.GetItemId() != "item-1" || len(own.GetEvents()) != 1 {
			t.Fatalf("session under SessionKey = %v, %v; want item-1 and the event", own, err)
		}
		if got, _ := s.GetItem(ctx, "item-1"); got.GetLinkSessionId() != "sess-1" {
			t.Fatalf("Item link_session_id = %q, want sess-1", got.GetLinkSessionId())
		}
	})
	// All or nothing: a failing session update stores nothing at all.
	t.Run("Atomic", func(t *testing.T) {
		s := fresh(t)
		in := newItem("item-1", "user-1", 0)
		in.LinkSessionId = "sess-1"
		_, err := s.PutItem(ctx, linkd.NewItem{
			Item: in, AccessToken: accessToken("item-1"), PublicToken: publicToken("1"), RefreshAt: at(1),
			Session: func(*linkdv1.LinkSession) (bool, error) { return false, linkd.Errorf(linkd.ECONFLICT, "no") },
		})
		wantCode(t, err, linkd.ECONFLICT)
		_, err = s.GetItem(ctx, "item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.AccessToken(ctx, "item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.ItemForPublicToken(ctx, publicToken("1"))
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.GetLinkSession(ctx, "sess-1")
		wantCode(t, err, linkd.ENOTFOUND)
		if due, _ := s.DueItemRefreshes(ctx, at(10), 10); len(due) != 0 {
			t.Fatalf("refresh queued by a failed PutItem: %q", due)
		}
		if items, _ := s.ListItems(ctx, "user-1"); len(items) != 0 {
			t.Fatalf("ListItems after a failed PutItem = %q", itemIDs(items))
		}
	})
	t.Run("ErrConflict", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0), PublicToken: publicToken("1")})
		_, err := s.PutItem(ctx, linkd.NewItem{Item: newItem("item-1", "user-1", 0), AccessToken: accessToken("item-1")})
		wantCode(t, err, linkd.ECONFLICT)
		// The same public token spent on another Item.
		_, err = s.PutItem(ctx, linkd.NewItem{Item: newItem("item-2", "user-1", 0), AccessToken: accessToken("item-2"), PublicToken: publicToken("1")})
		wantCode(t, err, linkd.ECONFLICT)
		_, err = s.GetItem(ctx, "item-2")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		s := fresh(t)
		for field, n := range map[string]linkd.NewItem{
			"item_id":        {Item: newItem("", "user-1", 0), AccessToken: accessToken("x")},
			"client_user_id": {Item: newItem("item-1", "", 0), AccessToken: accessToken("x")},
			"access_token":   {Item: newItem("item-1", "user-1", 0)},
		} {
			_, err := s.PutItem(ctx, n)
			wantField(t, err, field)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		s := fresh(t)
		_, err := s.GetItem(ctx, "item-nope")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.AccessToken(ctx, "item-nope")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.ItemForPublicToken(ctx, publicToken("nope"))
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

func testUpdateItem(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		got, err := s.UpdateItem(ctx, "item-1", linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", at(5)))
		if err != nil {
			t.Fatal(err)
		}
		if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED || !got.GetStatusChangedAt().AsTime().Equal(at(5)) {
			t.Fatalf("UpdateItem = %v", got)
		}
		stored, _ := s.GetItem(ctx, "item-1")
		wantProto(t, stored, got)
	})
	// When new_accounts_available was raised is kept with the flag: only
	// an update-mode session Plaid shows finished since then clears it.
	t.Run("NewAccountsNotice", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		got, err := s.UpdateItem(ctx, "item-1", linkd.ApplyItemWebhook(linkd.ItemWebhook{Type: "ITEM", Code: "NEW_ACCOUNTS_AVAILABLE"}, at(7)))
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := s.GetItem(ctx, "item-1")
		if !stored.GetNewAccountsAvailable() || !stored.GetNewAccountsAvailableAt().AsTime().Equal(at(7)) {
			t.Fatalf("GetItem = %v, want new_accounts_available raised at %v", stored, at(7))
		}
		wantProto(t, stored, got)
	})
	t.Run("NoChange", func(t *testing.T) {
		s := fresh(t)
		before := mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		got, err := s.UpdateItem(ctx, "item-1", noChange[*linkdv1.Item])
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, before)
		stored, _ := s.GetItem(ctx, "item-1")
		wantProto(t, stored, before)
	})
	// The institution index follows an Item whose institution changes.
	t.Run("InstitutionMoves", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		if _, err := s.UpdateItem(ctx, "item-1", linkd.SetItemDetails("ins_9", "Other Bank", nil)); err != nil {
			t.Fatal(err)
		}
		if items, _ := s.ItemsAtInstitution(ctx, "ins_3"); len(items) != 0 {
			t.Fatalf("ItemsAtInstitution(ins_3) = %q, want none", itemIDs(items))
		}
		if items, _ := s.ItemsAtInstitution(ctx, "ins_9"); !slices.Equal(itemIDs(items), []string{"item-1"}) {
			t.Fatalf("ItemsAtInstitution(ins_9) = %q, want item-1", itemIDs(items))
		}
	})
	t.Run("FnError", func(t *testing.T) {
		s := fresh(t)
		before := mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		want := linkd.Errorf(linkd.EPRECONDITION, "no")
		_, err := s.UpdateItem(ctx, "item-1", func(it *linkdv1.Item) (bool, error) {
			it.Status = linkdv1.ItemStatus_ITEM_STATUS_REVOKED
			return true, want
		})
		wantCode(t, err, linkd.EPRECONDITION)
		stored, _ := s.GetItem(ctx, "item-1")
		wantProto(t, stored, before)
		// Any error comes back unchanged, not as a storage failure.
		plain := errors.New("plain")
		if _, err := s.UpdateItem(ctx, "item-1", func(*linkdv1.Item) (bool, error) { return false, plain }); err != plain {
			t.Fatalf("UpdateItem returned %v, want fn's error unchanged", err)
		}
		if _, err := s.UpdateLinkSession(ctx, "sess-1", func(*linkdv1.LinkSession) (bool, error) { return false, plain }); err != plain {
			t.Fatalf("UpdateLinkSession returned %v, want fn's error unchanged", err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := fresh(t).UpdateItem(ctx, "item-nope", linkd.SetItemDetails("ins_9", "", nil))
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

func testDeleteItem(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0), PublicToken: publicToken("1"), RefreshAt: at(1)})
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-2", "user-1", 1)})
		if err := s.DeleteItem(ctx, "item-1"); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetItem(ctx, "item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.AccessToken(ctx, "item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.ItemForPublicToken(ctx, publicToken("1"))
		wantCode(t, err, linkd.ENOTFOUND)
		if items, _ := s.ListItems(ctx, "user-1"); !slices.Equal(itemIDs(items), []string{"item-2"}) {
			t.Fatalf("ListItems = %q, want item-2", itemIDs(items))
		}
		if items, _ := s.ItemsAtInstitution(ctx, "ins_3"); !slices.Equal(itemIDs(items), []string{"item-2"}) {
			t.Fatalf("ItemsAtInstitution = %q, want item-2", itemIDs(items))
		}
		if due, _ := s.DueItemRefreshes(ctx, at(10), 10); len(due) != 0 {
			t.Fatalf("DueItemRefreshes = %q after delete", due)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		wantCode(t, fresh(t).DeleteItem(ctx, "item-nope"), linkd.ENOTFOUND)
	})
}

func testDeleteUserRecords(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	// seed gives user-1 two Items (one from a session, with a public
	// token and a queued refresh), two link tokens, one renewed into the
	// other, two sessions, two webhooks and a claim; and user-2 one of
	// each, which must stay.
	seed := func(t *testing.T, s linkd.Store) {
		t.Helper()
		for _, tok := range []*storagev1.StoredLinkToken{
			{LinkToken: "link-token-1", ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(3600)},
			{LinkToken: "link-token-2", ClientUserId: "user-2", CreatedAt: ts(0), Expiration: ts(3600)},
		} {
			if err := s.PutLinkToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.RenewLinkToken(ctx, "link-token-1", &storagev1.StoredLinkToken{LinkToken: "link-token-1b", ClientUserId: "user-1", CreatedAt: ts(1), Expiration: ts(3600)}, at(1)); err != nil {
			t.Fatal(err)
		}
		mustUpdateSession(t, s, "sess-1", addEvent("sess-1", "OPEN", 1))
		mustUpdateSession(t, s, "sess-2", linkd.MergeRedirect("link-token-2", "user-2", event("sess-2", "OPEN", 1), at(1)))
		in := newItem("item-1", "user-1", 0)
		in.LinkSessionId = "sess-1"
		mustPutItem(t, s, linkd.NewItem{Item: in, PublicToken: publicToken("1"), Session: addEvent("sess-1", "HANDOFF", 2), RefreshAt: at(5)})
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-2", "user-1", 1)})
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-3", "user-2", 2)})
		for i, id := range []string{"item-1", "item-2", "item-3"} {
			w := &storagev1.StoredWebhook{WebhookType: "ITEM", WebhookCode: "ERROR", ItemId: id, ReceivedAt: ts(10 + i), Body: []byte(id)}
			if _, err := s.RecordWebhook(ctx, w, "delivery-"+id, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken("9"), ClientUserID: "user-1", Owner: "o", Now: at(1), TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		seed(t, s)
		got, err := s.DeleteUserRecords(ctx, "user-1", []string{"item-1", "item-2"})
		if err != nil {
			t.Fatal(err)
		}
		if want := (linkd.RecordCounts{Items: 2, Sessions: 1, LinkTokens: 2, Webhooks: 2}); got != want {
			t.Fatalf("counts = %+v, want %+v", got, want)
		}
		for _, id := range []string{"item-1", "item-2"} {
			_, err := s.GetItem(ctx, id)
			wantCode(t, err, linkd.ENOTFOUND)
			_, err = s.AccessToken(ctx, id)
			wantCode(t, err, linkd.ENOTFOUND)
		}
		_, err = s.ItemForPublicToken(ctx, publicToken("1"))
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = s.GetLinkSession(ctx, "sess-1")
		wantCode(t, err, linkd.ENOTFOUND)
		for _, tok := range []string{"link-token-1", "link-token-1b"} {
			_, err = s.GetLinkToken(ctx, tok)
			wantCode(t, err, linkd.ENOTFOUND)
		}
		if due, _ := s.DueItemRefreshes(ctx, at(100), 10); len(due) != 0 {
			t.Fatalf("DueItemRefreshes = %q after erasure", due)
		}
		if sessions, _, _ := s.LinkSessions(ctx, at(0), at(100), "", 10); len(sessions) != 1 || sessions[0].GetLinkSessionId() != "sess-2" {
			t.Fatalf("LinkSessions after erasure = %v, want sess-2 only", sessions)
		}
		hooks, _, err := s.ListWebhooks(ctx, "", 10)
		if err != nil || len(hooks) != 1 || hooks[0].GetItemId() != "item-3" {
			t.Fatalf("webhooks after erasure = %v, %v; want item-3's only", hooks, err)
		}
		// The claim went too: another user may now claim the token.
		if res, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken("9"), ClientUserID: "user-2", Owner: "p", Now: at(2), TTL: time.Minute}); err != nil || !res.Claimed {
			t.Fatalf("claim after erasure = %+v, %v", res, err)
		}
		// user-2 is untouched.
		if items, _ := s.ListItems(ctx, "user-2"); !slices.Equal(itemIDs(items), []string{"item-3"}) {
			t.Fatalf("user-2 Items = %q", itemIDs(items))
		}
		if _, err := s.GetLinkSession(ctx, "sess-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetLinkToken(ctx, "link-token-2"); err != nil {
			t.Fatal(err)
		}
		// Again: nothing left, zero counts.
		if again, err := s.DeleteUserRecords(ctx, "user-1", nil); err != nil || again != (linkd.RecordCounts{}) {
			t.Fatalf("second erasure = %+v, %v; want zeros", again, err)
		}
	})
	t.Run("ErrPreconditionItemNotRemoved", func(t *testing.T) {
		s := fresh(t)
		seed(t, s)
		_, err := s.DeleteUserRecords(ctx, "user-1", []string{"item-1"})
		wantCode(t, err, linkd.EPRECONDITION)
		if items, _ := s.ListItems(ctx, "user-1"); len(items) != 2 {
			t.Fatalf("Items after a refused erasure = %q, want both", itemIDs(items))
		}
		if _, err := s.GetLinkSession(ctx, "sess-1"); err != nil {
			t.Fatalf("session after a refused erasure: %v", err)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		_, err := fresh(t).DeleteUserRecords(ctx, "", nil)
		wantCode(t, err, linkd.EINVALID)
	})
}

// testItemsAfter: a walk a page at a time, with the last item_id as the
// cursor, sees every Item once, in item_id order, whoever created it when;
// an Item deleted mid-walk is not returned, one added after the cursor is.
func testItemsAfter(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	s := fresh(t)
	for i, id := range []string{"item-c", "item-a", "item-e", "item-b", "item-d"} {
		mustPutItem(t, s, linkd.NewItem{Item: newItem(id, fmt.Sprintf("user-%d", i%2), 10-i)})
	}
	walk := func(t *testing.T, limit int, between func(after string)) []string {
		t.Helper()
		return WalkItems(t, s, limit, between)
	}
	t.Run("Pages", func(t *testing.T) {
		if got, want := walk(t, 2, nil), []string{"item-a", "item-b", "item-c", "item-d", "item-e"}; !slices.Equal(got, want) {
			t.Fatalf("walk = %q, want %q", got, want)
		}
	})
	t.Run("OnePage", func(t *testing.T) {
		if got := walk(t, 100, nil); len(got) != 5 {
			t.Fatalf("walk = %q, want all five", got)
		}
	})
	t.Run("ChangesMidWalk", func(t *testing.T) {
		got := walk(t, 2, func(after string) {
			if after != "item-b" {
				return
			}
			if err := s.DeleteItem(ctx, "item-d"); err != nil {
				t.Fatal(err)
			}
			mustPutItem(t, s, linkd.NewItem{Item: newItem("item-f", "user-1", 1)})
		})
		if want := []string{"item-a", "item-b", "item-c", "item-e", "item-f"}; !slices.Equal(got, want) {
			t.Fatalf("walk = %q, want %q", got, want)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		_, err := s.ItemsAfter(ctx, strings.Repeat("x", 64<<10), 10)
		if linkd.ErrorCode(err) != linkd.EINVALID {
			t.Fatalf("ItemsAfter with a 64 KiB cursor = %v, want EINVALID", err)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		page, err := fresh(t).ItemsAfter(ctx, "", 10)
		if err != nil || len(page) != 0 {
			t.Fatalf("ItemsAfter on an empty store = %v, %v; want an empty page", page, err)
		}
	})
}

func testRefreshQueue(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	fill := func(t *testing.T) linkd.Store {
		s := fresh(t)
		for i, due := range []int{30, 10, 20, 40} {
			id := fmt.Sprintf("item-%d", i)
			mustPutItem(t, s, linkd.NewItem{Item: newItem(id, "user-1", i), RefreshAt: at(due)})
		}
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-norefresh", "user-1", 9)})
		return s
	}
	due := func(t *testing.T, s linkd.Store, now, limit int) []string {
		t.Helper()
		ids, err := s.DueItemRefreshes(ctx, at(now), limit)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	t.Run("Due", func(t *testing.T) {
		s := fill(t)
		if got, want := due(t, s, 30, 10), []string{"item-1", "item-2", "item-0"}; !slices.Equal(got, want) {
			t.Fatalf("due = %q, want %q", got, want)
		}
		if got, want := due(t, s, 100, 2), []string{"item-1", "item-2"}; !slices.Equal(got, want) {
			t.Fatalf("due, limit 2 = %q, want %q", got, want)
		}
		if got := due(t, s, 5, 10); len(got) != 0 {
			t.Fatalf("due before any = %q", got)
		}
	})
	t.Run("Defer", func(t *testing.T) {
		s := fill(t)
		if err := s.DeferItemRefresh(ctx, "item-1", at(35)); err != nil {
			t.Fatal(err)
		}
		if got, want := due(t, s, 100, 10), []string{"item-2", "item-0", "item-1", "item-3"}; !slices.Equal(got, want) {
			t.Fatalf("due = %q, want %q", got, want)
		}
		// None queued: not an error, and nothing is queued.
		if err := s.DeferItemRefresh(ctx, "item-norefresh", at(1)); err != nil {
			t.Fatal(err)
		}
		if got := due(t, s, 5, 10); len(got) != 0 {
			t.Fatalf("due = %q, want none", got)
		}
	})
	t.Run("UpdateRefreshedItem", func(t *testing.T) {
		s := fill(t)
		got, err := s.UpdateRefreshedItem(ctx, "item-1", linkd.SetItemDetails("", "Chase Bank", nil))
		if err != nil {
			t.Fatal(err)
		}
		if got.GetInstitutionName() != "Chase Bank" {
			t.Fatalf("UpdateRefreshedItem = %v", got)
		}
		if got, want := due(t, s, 100, 10), []string{"item-2", "item-0", "item-3"}; !slices.Equal(got, want) {
			t.Fatalf("due = %q, want %q", got, want)
		}
		// No change still dequeues: the refresh happened.
		if _, err := s.UpdateRefreshedItem(ctx, "item-2", noChange[*linkdv1.Item]); err != nil {
			t.Fatal(err)
		}
		if got, want := due(t, s, 100, 10), []string{"item-0", "item-3"}; !slices.Equal(got, want) {
			t.Fatalf("due = %q, want %q", got, want)
		}
		_, err = s.UpdateRefreshedItem(ctx, "item-nope", noChange[*linkdv1.Item])
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

func testRecordWebhook(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	hook := func(itemID string, n int) *storagev1.StoredWebhook {
		return &storagev1.StoredWebhook{WebhookType: "ITEM", WebhookCode: "ERROR", ItemId: itemID, ErrorCode: "ITEM_LOGIN_REQUIRED",
			ReceivedAt: ts(n), Body: []byte(fmt.Sprintf(`{"n":%d}`, n)), KeyId: "kid-1"}
	}
	toLogin := linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", at(5))
	t.Run("OK", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		got, err := s.RecordWebhook(ctx, hook("item-1", 5), "delivery-1", toLogin)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
			t.Fatalf("RecordWebhook = %v, want the Item moved", got)
		}
		stored, _ := s.GetItem(ctx, "item-1")
		wantProto(t, stored, got)
		hooks, _, err := s.ListWebhooks(ctx, "", 10)
		if err != nil || len(hooks) != 1 {
			t.Fatalf("ListWebhooks = %d, %v", len(hooks), err)
		}
		wantProto(t, hooks[0], hook("item-1", 5))
	})
	// A replayed delivery is refused and changes nothing: no second
	// webhook, no second update.
	t.Run("ErrConflictReplay", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		if _, err := s.RecordWebhook(ctx, hook("item-1", 5), "delivery-1", nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.RecordWebhook(ctx, hook("item-1", 6), "delivery-1", toLogin)
		wantCode(t, err, linkd.ECONFLICT)
		if hooks, _, _ := s.ListWebhooks(ctx, "", 10); len(hooks) != 1 {
			t.Fatalf("%d webhooks after a replay, want 1", len(hooks))
		}
		if stored, _ := s.GetItem(ctx, "item-1"); stored.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
			t.Fatalf("replay changed the Item: %v", stored)
		}
	})
	t.Run("NoItem", func(t *testing.T) {
		s := fresh(t)
		for i, h := range []*storagev1.StoredWebhook{hook("item-nope", 1), hook("", 2)} {
			got, err := s.RecordWebhook(ctx, h, fmt.Sprintf("delivery-%d", i), toLogin)
			if err != nil || got != nil {
				t.Fatalf("RecordWebhook = %v, %v; want nil, nil", got, err)
			}
		}
		if hooks, _, _ := s.ListWebhooks(ctx, "", 10); len(hooks) != 2 {
			t.Fatalf("%d webhooks, want 2: kept whatever they name", len(hooks))
		}
	})
	t.Run("NoChange", func(t *testing.T) {
		s := fresh(t)
		mustPutItem(t, s, linkd.NewItem{Item: newItem("item-1", "user-1", 0)})
		for i, fn := range []func(*linkdv1.Item) (bool, error){nil, noChange[*linkdv1.Item]} {
			got, err := s.RecordWebhook(ctx, hook("item-1", i), fmt.Sprintf("delivery-%d", i), fn)
			if err != nil || got != nil {
				t.Fatalf("RecordWebhook = %v, %v; want nil, nil", got, err)
			}
		}
	})
}

func testListWebhooks(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	s := fresh(t)
	for _, n := range []int{3, 1, 4, 5, 2} {
		w := &storagev1.StoredWebhook{WebhookType: "ITEM", WebhookCode: fmt.Sprint(n), ReceivedAt: ts(n), Body: []byte(fmt.Sprint(n))}
		if _, err := s.RecordWebhook(ctx, w, fmt.Sprintf("delivery-%d", n), nil); err != nil {
			t.Fatal(err)
		}
	}
	var codes []string
	token := ""
	for range 10 {
		page, next, err := s.ListWebhooks(ctx, token, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		for _, w := range page {
			codes = append(codes, w.GetWebhookCode())
		}
		if token = next; token == "" {
			break
		}
	}
	if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(codes, want) {
		t.Fatalf("webhooks = %q, want %q oldest first", codes, want)
	}
}

func testPrune(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	// fill stores, of each kind, one record at(10) and one at(30).
	fill := func(t *testing.T) linkd.Store {
		s := fresh(t)
		for _, n := range []int{10, 30} {
			id := fmt.Sprintf("sess-%d", n)
			mustUpdateSession(t, s, id, addEvent(id, "OPEN", n))
			w := &storagev1.StoredWebhook{WebhookType: "ITEM", ReceivedAt: ts(n), Body: []byte(fmt.Sprint(n))}
			if _, err := s.RecordWebhook(ctx, w, fmt.Sprintf("delivery-%d", n), nil); err != nil {
				t.Fatal(err)
			}
			tok := &storagev1.StoredLinkToken{LinkToken: fmt.Sprintf("link-%d", n), ClientUserId: "user-1", CreatedAt: ts(0), Expiration: ts(n)}
			if err := s.PutLinkToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	t.Run("ZeroKeepsAll", func(t *testing.T) {
		s := fill(t)
		res, err := s.Prune(ctx, linkd.PruneCutoffs{})
		if err != nil || res != (linkd.PruneResult{}) {
			t.Fatalf("Prune = %+v, %v; want nothing", res, err)
		}
	})
	t.Run("Sessions", func(t *testing.T) {
		s := fill(t)
		res, err := s.Prune(ctx, linkd.PruneCutoffs{Sessions: at(20)})
		if err != nil || res != (linkd.PruneResult{Sessions: 1}) {
			t.Fatalf("Prune = %+v, %v", res, err)
		}
		_, err = s.GetLinkSession(ctx, "sess-10")
		wantCode(t, err, linkd.ENOTFOUND)
		if _, err := s.GetLinkSession(ctx, "sess-30"); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LinkSessions(ctx, at(0), at(100), "", 10); !slices.Equal(sessionIDs(got), []string{"sess-30"}) {
			t.Fatalf("LinkSessions = %q", sessionIDs(got))
		}
	})
	// Retention counts from when linkd last saw a session (its own
	// clock), never from the device timestamps that order its events: a
	// phone whose clock reset to 2001, or ran into the next century, is
	// kept while linkd still hears from it, and pruned once it has not.
	// The stores find sessions through their start, and a device time past
	// 2262 or before 1678 does not fit in Unix nanoseconds, so these cover
	// both ends of that too.
	t.Run("SessionsByLinkdClock", func(t *testing.T) {
		s := fresh(t)
		devices := map[string]time.Time{
			"1600":   time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
			"2001":   time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC),
			"future": time.Now().AddDate(100, 0, 0),
			"3000":   time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		}
		for name, device := range devices {
			mustUpdateSession(t, s, "recent-"+name, deviceEvent("recent-"+name, device, 30))
			mustUpdateSession(t, s, "old-"+name, deviceEvent("old-"+name, device, 10))
		}
		res, err := s.Prune(ctx, linkd.PruneCutoffs{Sessions: at(20)})
		if err != nil || res != (linkd.PruneResult{Sessions: len(devices)}) {
			t.Fatalf("Prune = %+v, %v; want the %d sessions last seen before the cutoff", res, err, len(devices))
		}
		for name := range devices {
			if _, err := s.GetLinkSession(ctx, "recent-"+name); err != nil {
				t.Errorf("session seen after the cutoff, device clock %s: %v", name, err)
			}
			_, err := s.GetLinkSession(ctx, "old-"+name)
			if linkd.ErrorCode(err) != linkd.ENOTFOUND {
				t.Errorf("session last seen before the cutoff, device clock %s: GetLinkSession = %v, want ENOTFOUND", name, err)
			}
		}
	})
	// Sessions kept for being seen lately do not stop a run before the
	// old ones behind them, however many (more than a store's batch).
	t.Run("SessionsKeptDoNotStop", func(t *testing.T) {
		s := fresh(t)
		reset := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 600 {
			id := fmt.Sprintf("recent-%03d", i)
			mustUpdateSession(t, s, id, deviceEvent(id, reset, 30))
		}
		mustUpdateSession(t, s, "old", deviceEvent("old", reset.AddDate(1, 0, 0), 10))
		res, err := s.Prune(ctx, linkd.PruneCutoffs{Sessions: at(20)})
		if err != nil || res != (linkd.PruneResult{Sessions: 1}) {
			t.Fatalf("Prune = %+v, %v; want the one session last seen before the cutoff", res, err)
		}
		_, err = s.GetLinkSession(ctx, "old")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("Webhooks", func(t *testing.T) {
		s := fill(t)
		res, err := s.Prune(ctx, linkd.PruneCutoffs{Webhooks: at(20)})
		if err != nil || res != (linkd.PruneResult{Webhooks: 1}) {
			t.Fatalf("Prune = %+v, %v", res, err)
		}
		if hooks, _, _ := s.ListWebhooks(ctx, "", 10); len(hooks) != 1 || !hooks[0].GetReceivedAt().AsTime().Equal(at(30)) {
			t.Fatalf("webhooks left = %v", hooks)
		}
		// Delivery ids stay: a replay is still refused.
		_, err = s.RecordWebhook(ctx, &storagev1.StoredWebhook{ReceivedAt: ts(40)}, "delivery-10", nil)
		wantCode(t, err, linkd.ECONFLICT)
	})
	// Delivery ids are recorded at the store's clock, which the suite does
	// not set: a cutoff far in the future takes them all.
	t.Run("Deliveries", func(t *testing.T) {
		s := fill(t)
		res, err := s.Prune(ctx, linkd.PruneCutoffs{Deliveries: time.Now().Add(24 * time.Hour * 365 * 100)})
		if err != nil || res != (linkd.PruneResult{Deliveries: 2}) {
			t.Fatalf("Prune = %+v, %v", res, err)
		}
		if _, err := s.RecordWebhook(ctx, &storagev1.StoredWebhook{ReceivedAt: ts(40)}, "delivery-10", nil); err != nil {
			t.Fatalf("pruned delivery id still refused: %v", err)
		}
	})
	t.Run("LinkTokens", func(t *testing.T) {
		s := fill(t)
		res, err := s.Prune(ctx, linkd.PruneCutoffs{LinkTokens: at(20)})
		if err != nil || res != (linkd.PruneResult{LinkTokens: 1}) {
			t.Fatalf("Prune = %+v, %v", res, err)
		}
		_, err = s.GetLinkToken(ctx, "link-10")
		wantCode(t, err, linkd.ENOTFOUND)
		if _, err := s.GetLinkToken(ctx, "link-30"); err != nil {
			t.Fatal(err)
		}
	})
}

func testTryLease(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	s := fresh(t)
	try := func(owner string, now int) bool {
		t.Helper()
		ok, err := s.TryLease(ctx, "refresh", owner, at(now), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !try("a", 0) {
		t.Fatal("a did not get a free lease")
	}
	if try("b", 10) {
		t.Fatal("b got a's live lease")
	}
	if !try("a", 20) {
		t.Fatal("a could not renew its lease")
	}
	if try("b", 45) {
		t.Fatal("b got a's renewed lease")
	}
	if !try("b", 51) {
		t.Fatal("b did not get an expired lease")
	}
	if ok, err := s.TryLease(ctx, "other", "a", at(51), time.Second); err != nil || !ok {
		t.Fatalf("leases are not per name: %v, %v", ok, err)
	}
	// A stopping owner releases with ttl 0: another takes it at once.
	if ok, err := s.TryLease(ctx, "refresh", "b", at(60), 0); err != nil || !ok {
		t.Fatalf("b could not release its lease: %v, %v", ok, err)
	}
	if !try("c", 60) {
		t.Fatal("c did not get a released lease")
	}
	_, err := s.TryLease(ctx, "refresh", "c", at(61), -time.Second)
	wantCode(t, err, linkd.EINVALID)
}

// testLeaseCursor: a job's walk position is kept with its lease, for its
// owner only, and survives a takeover, so that the next owner resumes.
func testLeaseCursor(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	s := fresh(t)
	cursor := func(name string) string {
		t.Helper()
		c, err := s.LeaseCursor(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	set := func(owner, c string) bool {
		t.Helper()
		ok, err := s.SetLeaseCursor(ctx, "reconcile", owner, c)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	lease := func(owner string, now int) bool {
		t.Helper()
		ok, err := s.TryLease(ctx, "reconcile", owner, at(now), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if c := cursor("reconcile"); c != "" {
		t.Fatalf("cursor of a lease never taken = %q, want none", c)
	}
	if set("a", "item-1") {
		t.Fatal("a cursor recorded with no lease held")
	}
	if !lease("a", 0) || !set("a", "item-5") {
		t.Fatal("a could not record its cursor with its lease")
	}
	if c := cursor("reconcile"); c != "item-5" {
		t.Fatalf("cursor = %q, want item-5", c)
	}
	if !lease("a", 20) || cursor("reconcile") != "item-5" {
		t.Fatalf("after a renewal the cursor is %q, want item-5 kept", cursor("reconcile"))
	}
	if lease("b", 30) || set("b", "item-9") || cursor("reconcile") != "item-5" {
		t.Fatal("b moved the cursor of a's live lease")
	}
	// a stops without releasing; b takes the lease over once it lapses
	// and resumes where a stood.
	if !lease("b", 51) {
		t.Fatal("b did not get an expired lease")
	}
	if c := cursor("reconcile"); c != "item-5" {
		t.Fatalf("after a takeover the cursor is %q, want a's item-5", c)
	}
	if set("a", "item-7") || cursor("reconcile") != "item-5" {
		t.Fatal("a moved the cursor of the lease b took over")
	}
	if !set("b", "") || cursor("reconcile") != "" {
		t.Fatalf("b could not record the start of a new pass: cursor %q", cursor("reconcile"))
	}
	if !set("b", "item-8") {
		t.Fatal("b could not record its cursor")
	}
	if ok, err := s.TryLease(ctx, "other", "a", at(51), time.Second); err != nil || !ok || cursor("other") != "" {
		t.Fatalf("cursors are not per lease: %v, %v, %q", ok, err, cursor("other"))
	}
	if _, err := s.SetLeaseCursor(ctx, "", "a", "x"); linkd.ErrorCode(err) != linkd.EINVALID {
		t.Errorf("SetLeaseCursor with no name = %v, want EINVALID", err)
	}
}

func testContextDone(t *testing.T, fresh func(*testing.T) linkd.Store) {
	s := fresh(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.PutItem(ctx, linkd.NewItem{Item: newItem("item-1", "user-1", 0), AccessToken: accessToken("item-1")})
	wantCode(t, err, linkd.EUNAVAILABLE)
	_, err = s.GetItem(context.Background(), "item-1")
	wantCode(t, err, linkd.ENOTFOUND)
}

// testReseal seals under k1, reopens with k2 current, and re-seals.
func testReseal(t *testing.T, open OpenFunc) {
	ctx := context.Background()
	b := open(t, MustSealer(t, false))
	s := b.Store
	for i := range 3 {
		mustPutItem(t, s, linkd.NewItem{Item: newItem(fmt.Sprintf("item-%d", i), "user-1", i)})
	}
	if ids, err := s.SealedKeyIDs(ctx); err != nil || len(ids) != 1 || ids["k1"] == "" {
		t.Fatalf("SealedKeyIDs = %v, %v; want k1 only", ids, err)
	}
	s = b.Reopen(t, MustSealer(t, true))
	mustPutItem(t, s, linkd.NewItem{Item: newItem("item-new", "user-1", 9)})
	ids, err := s.SealedKeyIDs(ctx)
	if err != nil || len(ids) != 2 || ids["k2"] != "item-new" || ids["k1"] == "" {
		t.Fatalf("SealedKeyIDs = %v, %v; want k1 and k2 (item-new)", ids, err)
	}
	if total := ResealPass(t, s, 2); total != 3 {
		t.Fatalf("re-sealed %d, want 3", total)
	}
	if ids, _ := s.SealedKeyIDs(ctx); len(ids) != 1 || ids["k2"] == "" {
		t.Fatalf("SealedKeyIDs after re-seal = %v, want k2 only", ids)
	}
	// k1 can go now: every token opens with k2 alone.
	s = b.Reopen(t, sealerOf(t, "k2", key2))
	for _, id := range []string{"item-0", "item-1", "item-2", "item-new"} {
		if tok, err := s.AccessToken(ctx, id); err != nil || tok != accessToken(id) {
			t.Fatalf("AccessToken(%s) under k2 alone: %v", id, err)
		}
	}
}

// ResealPass runs one pass of s.ResealAccessTokens, batch at a time, and
// returns how many it re-sealed, failing t when a call fails, a batch
// re-seals more than batch, or the pass does not go forward.
func ResealPass(t testing.TB, s linkd.Store, batch int) int {
	t.Helper()
	total := 0
	after := ""
	for {
		n, next, err := s.ResealAccessTokens(context.Background(), after, batch)
		if err != nil {
			t.Fatal(err)
		}
		if n > batch {
			t.Fatalf("re-sealed %d in a batch of %d", n, batch)
		}
		total += n
		if next == "" {
			return total
		}
		if next <= after {
			t.Fatalf("ResealAccessTokens after %q goes on after %q: not forward", after, next)
		}
		after = next
	}
}

// testResealBatches rotates more Items than one batch re-seals, with some
// sealed under the new key already between them: one pass, each batch
// going on after the last, re-seals every one, so that each token opens
// with the new key alone and none with the old key alone, and a second
// pass finds nothing left.
func testResealBatches(t *testing.T, open OpenFunc) {
	ctx := context.Background()
	b := open(t, MustSealer(t, false))
	s := b.Store
	const old = 23
	var ids []string
	for i := range old {
		id := fmt.Sprintf("item-%02d", 2*i)
		mustPutItem(t, s, linkd.NewItem{Item: newItem(id, "user-1", i)})
		ids = append(ids, id)
	}
	s = b.Reopen(t, MustSealer(t, true))
	for i := range 5 { // sealed under k2 already, among the others
		id := fmt.Sprintf("item-%02d", 4*i+1)
		mustPutItem(t, s, linkd.NewItem{Item: newItem(id, "user-1", 100+i)})
		ids = append(ids, id)
	}
	if total := ResealPass(t, s, 4); total != old {
		t.Fatalf("one pass re-sealed %d, want %d", total, old)
	}
	if total := ResealPass(t, s, 4); total != 0 {
		t.Fatalf("a second pass re-sealed %d, want 0", total)
	}
	if keys, err := s.SealedKeyIDs(ctx); err != nil || len(keys) != 1 || keys["k2"] == "" {
		t.Fatalf("SealedKeyIDs after the pass = %v, %v; want k2 only", keys, err)
	}
	s = b.Reopen(t, sealerOf(t, "k2", key2))
	for _, id := range ids {
		if tok, err := s.AccessToken(ctx, id); err != nil || tok != accessToken(id) {
			t.Fatalf("AccessToken(%s) under k2 alone: %v", id, err)
		}
	}
	s = b.Reopen(t, sealerOf(t, "k1", key1))
	for _, id := range ids {
		if _, err := s.AccessToken(ctx, id); err == nil {
			t.Fatalf("AccessToken(%s) opens under k1 alone: not re-sealed", id)
		}
	}
}

// sealerOf is a Sealer holding the one key kid.
func sealerOf(t *testing.T, kid string, key []byte) linkd.Sealer {
	t.Helper()
	k, err := seal.ParseMasterKeys(kid+":"+base64.StdEncoding.EncodeToString(key), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := seal.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testSecretsNotInPlain stores every kind of secret and searches the
// backend's bytes for them.
func testSecretsNotInPlain(t *testing.T, open OpenFunc) {
	ctx := context.Background()
	b := open(t, MustSealer(t, false))
	if b.Raw == nil {
		t.Skip("the backend offers no raw dump")
	}
	s := b.Store
	pt := publicToken("secret")
	in := newItem("item-1", "user-1", 0)
	in.LinkSessionId = "sess-1"
	connected := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: pt, LinkSessionId: "sess-1", InstitutionId: "ins_3",
	}}}
	if _, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: pt, ClientUserID: "user-1", Owner: "a", Now: at(0), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	mustPutItem(t, s, linkd.NewItem{Item: in, PublicToken: pt, Session: linkd.MergeRedirect("link-token-1", "user-1", connected, at(1))})
	if _, err := s.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken("pending"), ClientUserID: "user-1", Owner: "a", Now: at(0), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	raw := b.Raw(t)
	if len(raw) == 0 {
		t.Fatal("raw dump is empty")
	}
	if !bytes.Contains(raw, []byte("item-1")) {
		t.Fatal("raw dump does not hold the records (no item_id found)")
	}
	secrets := [][]byte{
		[]byte(accessToken("item-1").Reveal()),
		[]byte(pt), []byte(publicToken("pending")),
		key1, []byte(base64.StdEncoding.EncodeToString(key1)),
	}
	if found, ok := containsAny(raw, secrets...); ok {
		t.Fatalf("backend holds %q in plain", found)
	}
}

// raceSession has 2×20 writers add distinct events to one session through
// a and b at once: none may be lost.
func raceSession(t *testing.T, a, b linkd.Store) {
	const each = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i := range 2 * each {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.UpdateLinkSession(context.Background(), "sess-1", addEvent("sess-1", fmt.Sprintf("E%02d", i), i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.GetLinkSession(context.Background(), "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetEvents()) != 2*each {
		t.Fatalf("%d events, want %d: updates were lost", len(got.GetEvents()), 2*each)
	}
}

// testEmptyIDs checks the contract's EINVALID for an empty id, naming the
// field, on every method that takes one.
func testEmptyIDs(t *testing.T, fresh func(*testing.T) linkd.Store) {
	ctx := context.Background()
	s := fresh(t)
	keep := func(*linkdv1.Item) (bool, error) { return false, nil }
	for _, tt := range []struct {
		name, field string
		call        func() error
	}{
		{"GetLinkToken", "link_token", func() error { _, err := s.GetLinkToken(ctx, ""); return err }},
		{"LinkTokenRenewal", "link_token", func() error { _, err := s.LinkTokenRenewal(ctx, "", at(0)); return err }},
		{"SetHostedLinkTokenCheck", "link_token", func() error { return s.SetHostedLinkTokenCheck(ctx, "", at(0)) }},
		{"SettleLinkToken", "link_token", func() error { return s.SettleLinkToken(ctx, "", &storagev1.LinkTokenSettlement{}) }},
		{"GetLinkSession", "link_session_id", func() error { _, err := s.GetLinkSession(ctx, ""); return err }},
		{"ItemForPublicToken", "public_token", func() error { _, err := s.ItemForPublicToken(ctx, ""); return err }},
		{"GetItem", "item_id", func() error { _, err := s.GetItem(ctx, ""); return err }},
		{"ListItems", "client_user_id", func() error { _, err := s.ListItems(ctx, ""); return err }},
		{"UpdateItem", "item_id", func() error { _, err := s.UpdateItem(ctx, "", keep); return err }},
		{"UpdateRefreshedItem", "item_id", func() error { _, err := s.UpdateRefreshedItem(ctx, "", keep); return err }},
		{"AccessToken", "item_id", func() error { _, err := s.AccessToken(ctx, ""); return err }},
		{"DeleteItem", "item_id", func() error { return s.DeleteItem(ctx, "") }},
		{"DeferItemRefresh", "item_id", func() error { return s.DeferItemRefresh(ctx, "", at(0)) }},
		{"RecordWebhook", "delivery_id", func() error { _, err := s.RecordWebhook(ctx, &storagev1.StoredWebhook{}, "", nil); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) { wantField(t, tt.call(), tt.field) })
	}
}
