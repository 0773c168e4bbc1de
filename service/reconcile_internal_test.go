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

// TestReconcile_LeaseHeldElsewhere: while another process holds the
// reconcile lease, this one's walk stops before its first Plaid call;
// once the lease is free the walk takes it and runs.
func TestReconcile_LeaseHeldElsewhere(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "lease-test", Secret: "lease-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	pc, err := plaid.New(plaid.Config{ClientID: "lease-test", Secret: "lease-secret", Env: linkd.PlaidSandbox, BaseURL: emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	db, err := store.Open(filepath.Join(t.TempDir(), "linkd.db"), store.Options{Sealer: storetest.MustSealer(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
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
	if _, err := s.reconcile(ctx, time.Hour, s.pacer("reconcile", -1, time.Minute)); !errors.Is(err, errLeaseLost) {
		t.Fatalf("reconcile under another's lease = %v, want errLeaseLost", err)
	}
	if emu.Calls("/item/get") != calls {
		t.Fatal("reconcile asked Plaid while another replica held the lease")
	}

	if _, err := db.TryLease(ctx, "job/reconcile", "another-replica", s.now(), 0); err != nil { // released
		t.Fatal(err)
	}
	res, err := s.reconcile(ctx, time.Hour, s.pacer("reconcile", -1, time.Minute))
	if err != nil || res.Reconciled != 1 {
		t.Fatalf("reconcile with the lease free = %+v, %v; want the Item", res, err)
	}
	if held, _ := db.TryLease(ctx, "job/reconcile", "another-replica", s.now(), time.Minute); held {
		t.Error("the walk did not hold the lease it ran under")
	}
}
