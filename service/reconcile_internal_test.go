package service

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/store"
	"github.com/linkd/linkd/storetest"
)

// mustParts returns the real parts of a Service, closed at cleanup: the
// emulator, the Plaid client talking to it over loopback HTTP, and a
// bbolt file.
func mustParts(t *testing.T) (*plaidemu.Emulator, *plaid.Client, *store.DB) {
	t.Helper()
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "internal-test", Secret: "internal-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	pc, err := plaid.New(plaid.Config{ClientID: "internal-test", Secret: "internal-secret", Env: linkd.PlaidSandbox, BaseURL: emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	db, err := store.Open(filepath.Join(t.TempDir(), "linkd.db"), store.Options{Sealer: storetest.MustSealer(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return emu, pc, db
}

// TestReconcile_LeaseHeldElsewhere: while another process holds the
// reconcile lease, this one's walk stops before its first Plaid call;
// once the lease is free the walk takes it and runs.
func TestReconcile_LeaseHeldElsewhere(t *testing.T) {
	emu, pc, db := mustParts(t)
	s, err := New(Config{Plaid: pc, Store: db, Defaults: LinkDefaults{Products: []string{"transactions"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pt, _, err := s.CreateSandboxPublicToken(ctx, "ins_109508", nil, linkd.SandboxLogin{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExchangePublicToken(ctx, pt, "user-1"); err != nil {
		t.Fatal(err)
	}

	if held, err := db.TryLease(ctx, "job/reconcile", "another-replica", s.now(), time.Hour); err != nil || !held {
		t.Fatalf("the other replica's lease: %v, %v", held, err)
	}
	calls := emu.Calls("/item/get")
	if _, err := s.reconcile(ctx, time.Hour, s.pacer("reconcile", -1, time.Minute), reconcileLease); !errors.Is(err, errLeaseLost) {
		t.Fatalf("reconcile under another's lease = %v, want errLeaseLost", err)
	}
	if emu.Calls("/item/get") != calls {
		t.Fatal("reconcile asked Plaid while another replica held the lease")
	}

	if _, err := db.TryLease(ctx, "job/reconcile", "another-replica", s.now(), 0); err != nil { // released
		t.Fatal(err)
	}
	res, err := s.reconcile(ctx, time.Hour, s.pacer("reconcile", -1, time.Minute), reconcileLease)
	if err != nil || res.Reconciled != 1 {
		t.Fatalf("reconcile with the lease free = %+v, %v; want the Item", res, err)
	}
	if held, _ := db.TryLease(ctx, "job/reconcile", "another-replica", s.now(), time.Minute); held {
		t.Error("the walk did not hold the lease it ran under")
	}
}

// TestReconcile_TakeoverResumes: a replica that takes the reconcile lease
// over resumes the walk where the last holder stopped (the position is
// kept with the lease in the store), rather than at the first Item: with
// the first Item due again, it compares only the Items after it.
func TestReconcile_TakeoverResumes(t *testing.T) {
	_, pc, db := mustParts(t)
	now := time.Now()
	replica := func(owner string) *Service {
		s, err := New(Config{Plaid: pc, Store: db, Owner: owner, Now: func() time.Time { return now },
			Defaults: LinkDefaults{Products: []string{"transactions"}}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := replica("replica-a"), replica("replica-b")
	ctx := context.Background()
	for _, user := range []string{"user-1", "user-2", "user-3"} {
		pt, _, err := a.CreateSandboxPublicToken(ctx, "ins_109508", nil, linkd.SandboxLogin{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.ExchangePublicToken(ctx, pt, user); err != nil {
			t.Fatal(err)
		}
	}
	items, err := db.ItemsAfter(ctx, "", 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("ItemsAfter = %d Items, %v", len(items), err)
	}

	// Replica a compares the first Item, then stops (killed before its
	// second Plaid call) without releasing the lease.
	errStopped := errors.New("replica a stopped")
	calls, pace := 0, a.pacer("reconcile", -1, time.Minute)
	stopSecond := func(ctx context.Context) error {
		if calls++; calls == 2 {
			return errStopped
		}
		return pace(ctx)
	}
	if res, err := a.reconcile(ctx, time.Hour, stopSecond, reconcileLease); !errors.Is(err, errStopped) || res.Reconciled != 1 {
		t.Fatalf("replica a's walk = %+v, %v; want the first Item, then stopped", res, err)
	}

	// Its lease runs out; by then the first Item is due again. Replica b
	// takes the walk over and resumes after the first Item.
	now = now.Add(2 * time.Hour)
	res, err := b.reconcile(ctx, time.Hour, b.pacer("reconcile", -1, time.Minute), reconcileLease)
	if err != nil || res.Reconciled != 2 {
		t.Fatalf("replica b's walk = %+v, %v; want the 2 Items a did not reach", res, err)
	}
	first, err := db.GetItem(ctx, items[0].GetItemId())
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetReconciledAt().AsTime().Before(now) {
		t.Error("replica b started over at the first Item instead of resuming after it")
	}
	// The pass over, the next starts at the first Item again.
	if res, err := b.reconcile(ctx, time.Hour, b.pacer("reconcile", -1, time.Minute), reconcileLease); err != nil || res.Reconciled != 1 {
		t.Fatalf("replica b's next pass = %+v, %v; want the first Item", res, err)
	}
}
