package service_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/store"
)

// racingStore answers ENOTFOUND to the next hide session reads, as if
// another user's first redirect had not been written yet.
type racingStore struct {
	*store.DB
	hide atomic.Int32
}

func (r *racingStore) GetLinkSession(ctx context.Context, id string) (*linkdv1.LinkSession, error) {
	if r.hide.Add(-1) >= 0 {
		return nil, linkd.Errorf(linkd.ENOTFOUND, "link session not found")
	}
	return r.DB.GetLinkSession(ctx, id)
}

// TestService_SubmitRedirect_SessionRace: Bob's first redirect is written
// between Alice's lookup of her key for the same session id and her
// write. Alice must still get what a fresh id gets, filed under her own
// key, and Bob's session must not change.
func TestService_SubmitRedirect_SessionRace(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	event := func(name string, at time.Time) *linkdv1.WebviewRedirect {
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
			EventName: name, LinkSessionId: "sess-1", Timestamp: timestamppb.New(at)}}}
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	bob, err := e.db.UpdateLinkSession(ctx, "sess-1", linkd.MergeRedirect("link-bob", "bob", event("OPEN", at), at))
	if err != nil {
		t.Fatal(err)
	}
	rs := &racingStore{DB: e.db}
	rs.hide.Store(1)
	svc, err := service.New(service.Config{Plaid: mustPlaid(t, e), Store: rs})
	if err != nil {
		t.Fatal(err)
	}
	alice := linkd.WithCaller(ctx, linkd.Caller{UserID: "alice"})
	if _, err := svc.SubmitRedirect(alice, &storagev1.StoredLinkToken{LinkToken: "link-alice", ClientUserId: "alice"}, event("TRANSITION_VIEW", at)); err != nil {
		t.Fatalf("Alice's redirect, racing Bob's first: %v; want it filed as under a fresh id", err)
	}
	own, err := svc.GetLinkSession(alice, "sess-1")
	if err != nil || own.GetClientUserId() != "alice" || len(own.GetEvents()) != 1 {
		t.Fatalf("Alice reads %v, %v; want her own session with her event", own, err)
	}
	if after, _ := e.db.GetLinkSession(ctx, "sess-1"); len(after.GetEvents()) != len(bob.GetEvents()) || after.GetClientUserId() != "bob" {
		t.Errorf("Bob's session changed: %v", after)
	}
}
