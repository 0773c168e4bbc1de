package service_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/store"
	"github.com/linkd/linkd/storetest"
)

// env is a Service over a real bbolt file and the real Plaid client
// talking to the emulator, with no background jobs running.
type env struct {
	svc     *service.Service
	db      *store.DB
	emu     *plaidemu.Emulator
	commits atomic.Int64
}

// mustEnv returns an env, closed at cleanup.
func mustEnv(t *testing.T) *env {
	t.Helper()
	e := &env{}
	var err error
	e.emu, err = plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "svc-test", Secret: "svc-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.emu.Close() })
	pc, err := plaid.New(plaid.Config{ClientID: "svc-test", Secret: "svc-secret", Env: linkd.PlaidSandbox, BaseURL: e.emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	e.db, err = store.Open(filepath.Join(t.TempDir(), "linkd.db"), store.Options{
		Sealer:   storetest.MustSealer(t, false),
		OnCommit: func(int, time.Duration) { e.commits.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.svc, err = service.New(service.Config{Plaid: pc, Store: e.db, Defaults: service.LinkDefaults{
		ClientName: "test", Products: []string{"transactions"}, CountryCodes: []string{"US"}, Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// plaidCalls counts the emulator's calls of every endpoint.
func (e *env) plaidCalls() int {
	n := 0
	for _, p := range []string{"/link/token/create", "/item/public_token/exchange", "/accounts/get", "/item/get"} {
		n += e.emu.Calls(p)
	}
	return n
}

// TestService_SubmitRedirect_ConnectedCost pins the cost of the durable
// link path: a connected redirect of a new Item makes two commits (the
// exchange claim, then the Item with its session and queued refresh) and
// one Plaid call (the exchange); the accounts come from the redirect and
// the refresh runs later, off the request path.
func TestService_SubmitRedirect_ConnectedCost(t *testing.T) {
	e := mustEnv(t)
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	tok, err := e.svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1"})
	if err != nil {
		t.Fatal(err)
	}
	publicToken, err := e.emu.CreatePublicToken(tok.GetLinkToken(), "ins_109508", nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.svc.LinkToken(ctx, tok.GetLinkToken())
	if err != nil {
		t.Fatal(err)
	}
	r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: publicToken, InstitutionId: "ins_109508", InstitutionName: "First Platypus Bank",
		LinkSessionId: "sess-cost", Accounts: []*linkdv1.Account{{Id: "acc-1", Name: "Plaid Checking", Mask: "0000"}},
	}}}

	commits, calls := e.commits.Load(), e.plaidCalls()
	out, err := e.svc.SubmitRedirect(ctx, stored, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.commits.Load() - commits; got != 2 {
		t.Errorf("commits on the request path = %d, want 2 (claim, then Item with session)", got)
	}
	if got := e.plaidCalls() - calls; got != 1 {
		t.Errorf("Plaid calls on the request path = %d, want 1 (the exchange)", got)
	}
	if len(out.Item.GetAccounts()) != 1 || out.Item.GetInstitutionId() != "ins_109508" {
		t.Errorf("Item = %v, want the redirect's institution and account", out.Item)
	}
	sess, err := e.db.GetLinkSession(ctx, "sess-cost")
	if err != nil || sess.GetConnected() == nil || sess.GetItemId() != out.Item.GetItemId() {
		t.Fatalf("session = %v, %v; want its connected outcome and Item stored with the Item", sess, err)
	}
	due, err := e.db.DueItemRefreshes(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0] != out.Item.GetItemId() {
		t.Fatalf("queued refreshes = %v, %v; want the new Item", due, err)
	}

	// The queued refresh then reads Plaid's view, once, and leaves the queue.
	n, err := e.svc.RefreshQueued(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RefreshQueued = %d, %v; want 1", n, err)
	}
	if e.emu.Calls("/accounts/get") == 0 {
		t.Error("the refresh did not ask Plaid for the accounts")
	}
	if due, _ := e.db.DueItemRefreshes(ctx, time.Now().Add(time.Minute), 10); len(due) != 0 {
		t.Errorf("queued refreshes after RefreshQueued = %v, want none", due)
	}

	// Submitted again, the redirect costs no commit and no Plaid call.
	commits, calls = e.commits.Load(), e.plaidCalls()
	again, err := e.svc.SubmitRedirect(ctx, stored, r)
	if err != nil || again.Item.GetItemId() != out.Item.GetItemId() {
		t.Fatalf("resubmission = %v, %v; want the same Item", again.Item, err)
	}
	if c, p := e.commits.Load()-commits, e.plaidCalls()-calls; c != 0 || p != 0 {
		t.Errorf("resubmission made %d commits and %d Plaid calls, want none", c, p)
	}
}

// TestService_RunJobs_ReleasesLeases: while jobs run, their leases keep
// other processes out; once RunJobs stops, another process takes them at
// once instead of waiting for them to run out.
func TestService_RunJobs_ReleasesLeases(t *testing.T) {
	e := mustEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.RunJobs(ctx, service.Jobs{}); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A probe with no time to live takes nothing from the jobs: it
		// reports whether the lease was free and leaves it free.
		free, err := e.db.TryLease(context.Background(), "job/refresh", "another-process", time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !free {
			break // the running jobs hold it
		}
		if time.Now().After(deadline) {
			t.Fatal("the running jobs never held their lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	for _, name := range []string{"prune", "reseal", "refresh", "hosted", "reconcile"} {
		held, err := e.db.TryLease(context.Background(), "job/"+name, "another-process", time.Now(), time.Minute)
		if err != nil || !held {
			t.Errorf("lease job/%s after RunJobs stopped: held %v, %v; want it free", name, held, err)
		}
	}
}
