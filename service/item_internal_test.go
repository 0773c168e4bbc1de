package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

// interleaved is the real Plaid client with a hook run right after the
// first /accounts/get that Plaid answers (after every one, with repeat):
// what happens there happens between linkd's read of the Item and its
// write.
type interleaved struct {
	linkd.Plaid
	mu          sync.Mutex
	afterRead   func()
	repeat      bool
	accountsGet int
}

func (p *interleaved) GetAccounts(ctx context.Context, token linkd.AccessToken) (linkd.ItemAccounts, error) {
	acc, err := p.Plaid.GetAccounts(ctx, token)
	p.mu.Lock()
	p.accountsGet++
	hook := p.afterRead
	if !p.repeat {
		p.afterRead = nil
	}
	p.mu.Unlock()
	if hook != nil && err == nil {
		hook()
	}
	return acc, err
}

// webhookEnv is a Service over a real bbolt file and the real Plaid client
// to the emulator, wrapped in interleaved, whose Items send their webhooks
// to a receiver that hands each body to hooks.
type webhookEnv struct {
	svc   *Service
	plaid *interleaved
	hooks chan []byte
	fired int
}

func mustWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	e := &webhookEnv{hooks: make(chan []byte, 16)}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.hooks <- b
	}))
	t.Cleanup(recv.Close)
	_, pc, db := mustParts(t)
	e.plaid = &interleaved{Plaid: pc}
	var err error
	e.svc, err = New(Config{Plaid: e.plaid, Store: db, Defaults: LinkDefaults{Products: []string{"transactions"}, Webhook: recv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// link links a sandbox Item for user-1 and returns it.
func (e *webhookEnv) link(t *testing.T) *linkdv1.Item {
	t.Helper()
	ctx := context.Background()
	pt, _, err := e.svc.CreateSandboxPublicToken(ctx, "ins_109508", nil, linkd.SandboxLogin{})
	if err != nil {
		t.Fatal(err)
	}
	item, err := e.svc.ExchangePublicToken(ctx, pt, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	return item
}

// fire has Plaid's sandbox send the Item's webhook code, as the event
// would (the emulator changes the Item), waits for it at the receiver and
// applies it.
func (e *webhookEnv) fire(t *testing.T, itemID, code string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.svc.FireSandboxWebhook(ctx, itemID, "", code); err != nil {
		t.Errorf("FireSandboxWebhook(%s): %v", code, err)
		return
	}
	stop := time.After(30 * time.Second) // a hang guard, not a timing assertion
	for {
		select {
		case b := <-e.hooks:
			var h struct {
				Code string `json:"webhook_code"`
			}
			if json.Unmarshal(b, &h) != nil || h.Code != code {
				continue // another webhook of the Item (transactions)
			}
			e.fired++ // each delivery is a new one, as Plaid signs each anew
			if _, _, err := e.svc.ApplyWebhook(ctx, Delivery{Body: b, KeyID: "kid", ID: fmt.Sprintf("%s-%s-%d", code, itemID, e.fired)}); err != nil {
				t.Errorf("ApplyWebhook(%s): %v", code, err)
			}
			return
		case <-stop:
			t.Errorf("webhook %s never reached the receiver", code)
			return
		}
	}
}

func accountIDs(item *linkdv1.Item) []string {
	var ids []string
	for _, a := range item.GetAccounts() {
		ids = append(ids, a.GetId())
	}
	return ids
}

// TestService_WebhookDuringRead: a webhook applied while linkd reads an
// Item's accounts from Plaid (after Plaid answered, before linkd wrote)
// is not undone by that older answer: linkd reads again, and Plaid's
// answer then includes what the webhook reported. Driven in that order by
// a hook after the first /accounts/get.
func TestService_WebhookDuringRead(t *testing.T) {
	ctx := context.Background()

	t.Run("ConfirmUpdateMode/UserAccountRevoked", func(t *testing.T) {
		e := mustWebhookEnv(t)
		item := e.link(t)
		revoked := item.GetAccounts()[0].GetId()
		e.plaid.afterRead = func() { e.fire(t, item.GetItemId(), "USER_ACCOUNT_REVOKED") }
		e.plaid.accountsGet = 0
		got, err := e.svc.repaired(ctx, &storagev1.StoredLinkToken{ItemId: item.GetItemId(), ClientUserId: "user-1"})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(accountIDs(got), revoked) {
			t.Errorf("accounts after the confirmation = %v; %s was revoked while it read them", accountIDs(got), revoked)
		}
		if e.plaid.accountsGet != 2 {
			t.Errorf("/accounts/get calls = %d, want 2 (the stale read, then a fresh one)", e.plaid.accountsGet)
		}
	})

	t.Run("ConfirmUpdateMode/NewAccountsAvailable", func(t *testing.T) {
		e := mustWebhookEnv(t)
		item := e.link(t)
		e.plaid.afterRead = func() { e.fire(t, item.GetItemId(), "NEW_ACCOUNTS_AVAILABLE") }
		got, err := e.svc.repaired(ctx, &storagev1.StoredLinkToken{ItemId: item.GetItemId(), ClientUserId: "user-1"})
		if err != nil {
			t.Fatal(err)
		}
		if !got.GetNewAccountsAvailable() {
			t.Error("new_accounts_available cleared by a confirmation that began before NEW_ACCOUNTS_AVAILABLE arrived")
		}
	})

	// Webhooks that keep arriving during every read: the confirmation
	// gives up, stores nothing, and asks the caller to resubmit.
	t.Run("ConfirmUpdateMode/KeepsArriving", func(t *testing.T) {
		e := mustWebhookEnv(t)
		item := e.link(t)
		e.plaid.afterRead, e.plaid.repeat = func() { e.fire(t, item.GetItemId(), "NEW_ACCOUNTS_AVAILABLE") }, true
		e.plaid.accountsGet = 0
		_, err := e.svc.repaired(ctx, &storagev1.StoredLinkToken{ItemId: item.GetItemId(), ClientUserId: "user-1"})
		if linkd.ErrorCode(err) != linkd.EUNAVAILABLE || !errors.Is(err, linkd.ErrStaleRead) {
			t.Fatalf("repaired = %v, want EUNAVAILABLE (stale reads)", err)
		}
		if e.plaid.accountsGet != staleReadAttempts {
			t.Errorf("/accounts/get calls = %d, want %d", e.plaid.accountsGet, staleReadAttempts)
		}
		if got, err := e.svc.store.GetItem(ctx, item.GetItemId()); err != nil || !got.GetNewAccountsAvailable() {
			t.Errorf("Item = %v, %v; want new_accounts_available still set", got, err)
		}
	})

	t.Run("Refresh/UserAccountRevoked", func(t *testing.T) {
		e := mustWebhookEnv(t)
		item := e.link(t)
		revoked := item.GetAccounts()[0].GetId()
		e.plaid.afterRead = func() { e.fire(t, item.GetItemId(), "USER_ACCOUNT_REVOKED") }
		got, err := e.svc.refresh(ctx, item.GetItemId(), e.svc.store.UpdateItem)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(accountIDs(got), revoked) {
			t.Errorf("accounts after the refresh = %v; %s was revoked while it read them", accountIDs(got), revoked)
		}
	})
}

// queueRefreshes stores n sandbox Items, each with its refresh queued and
// due now, exchanged with Plaid but not yet refreshed.
func (e *webhookEnv) queueRefreshes(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		pt, _, err := e.svc.CreateSandboxPublicToken(ctx, "ins_109508", nil, linkd.SandboxLogin{})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := e.plaid.ExchangePublicToken(ctx, pt)
		if err != nil {
			t.Fatal(err)
		}
		item := &linkdv1.Item{ItemId: ex.ItemID, ClientUserId: fmt.Sprintf("user-%d", i), Status: linkdv1.ItemStatus_ITEM_STATUS_GOOD}
		if _, err := e.svc.store.PutItem(ctx, linkd.NewItem{Item: item, AccessToken: ex.AccessToken, RefreshAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestService_RefreshQueued_Overlaps: the queued refreshes of a pass run
// several at once, so that their Plaid calls overlap and their commits
// are shared (one at a time, the queue drained slower than links arrived
// under load). The hook after each /accounts/get waits for another
// refresh to reach it too; one at a time, none ever does.
func TestService_RefreshQueued_Overlaps(t *testing.T) {
	e := mustWebhookEnv(t)
	ctx := context.Background()
	e.queueRefreshes(t, 4)
	var (
		mu       sync.Mutex
		inflight int
		met      = make(chan struct{})
		meet     = sync.OnceFunc(func() { close(met) })
	)
	e.plaid.repeat = true
	e.plaid.afterRead = func() {
		mu.Lock()
		inflight++
		if inflight == 2 {
			meet()
		}
		mu.Unlock()
		select {
		case <-met:
		case <-time.After(2 * time.Second): // alone: a hang guard, and the failure below
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	n, err := e.svc.RefreshQueued(ctx)
	if err != nil || n != 4 {
		t.Fatalf("RefreshQueued = %d, %v; want 4", n, err)
	}
	select {
	case <-met:
	default:
		t.Error("no two queued refreshes were ever in flight together")
	}
	if due, _ := e.svc.store.DueItemRefreshes(ctx, time.Now().Add(time.Minute), 10); len(due) != 0 {
		t.Errorf("queued refreshes after RefreshQueued = %v, want none", due)
	}
}

// stopClock gives e's Service a clock that stands a minute from now and
// moves only by the returned advance.
func stopClock(e *webhookEnv) (advance func(time.Duration) time.Time) {
	var ns atomic.Int64
	ns.Store(time.Now().Add(time.Minute).UnixNano())
	e.svc.now = func() time.Time { return time.Unix(0, ns.Load()) }
	return func(d time.Duration) time.Time { return time.Unix(0, ns.Add(int64(d))) }
}

// TestService_DrainRefreshes_LeaseLost: once another process holds the
// refresh job's lease, the drain starts no further Item, even in the
// middle of a batch; only the Items already started (at most one per
// worker) finish, and the rest stay queued for the lease's holder.
func TestService_DrainRefreshes_LeaseLost(t *testing.T) {
	e := mustWebhookEnv(t)
	advance := stopClock(e)
	ctx := context.Background()
	e.queueRefreshes(t, refreshBatch+1)
	const ttl = time.Minute
	if held, err := e.svc.store.TryLease(ctx, "job/refresh", e.svc.owner, e.svc.now(), ttl); err != nil || !held {
		t.Fatalf("TryLease = %v, %v", held, err)
	}
	// During the first refresh the lease runs out (on the other replica's
	// clock, which is ahead of any renewal this one made) and the other
	// replica takes it; then this one's clock gets there too.
	taken := false
	e.plaid.afterRead = func() {
		held, err := e.svc.store.TryLease(ctx, "job/refresh", "other-replica", e.svc.now().Add(2*ttl), ttl)
		if err != nil || !held {
			t.Errorf("the other replica did not take the expired lease: %v, %v", held, err)
		}
		taken = held
		advance(2 * ttl)
	}
	if err := e.svc.drainRefreshes(ctx, ttl); err != nil {
		t.Fatal(err)
	}
	if !taken {
		t.Fatal("the lease was never taken over")
	}
	if e.plaid.accountsGet > refreshWorkers {
		t.Errorf("/accounts/get calls = %d, want at most %d (those started before the lease was lost): the drain went on without its lease",
			e.plaid.accountsGet, refreshWorkers)
	}
	due, _ := e.svc.store.DueItemRefreshes(ctx, e.svc.now(), 2*refreshBatch)
	if want := refreshBatch + 1 - e.plaid.accountsGet; len(due) != want {
		t.Errorf("queued refreshes left = %d, want %d for the lease holder", len(due), want)
	}
}

// TestService_DrainRefreshes_LongBatch: a batch that runs longer than the
// lease (each /accounts/get here takes a twentieth of it, on the
// service's clock, and a batch is 64 of them, 4 at a time) keeps the
// lease renewed, so another replica trying for it after every Plaid call
// never gets it, and every Item is refreshed once, by this process.
func TestService_DrainRefreshes_LongBatch(t *testing.T) {
	e := mustWebhookEnv(t)
	advance := stopClock(e)
	ctx := context.Background()
	const items = refreshBatch + 8
	e.queueRefreshes(t, items)
	const ttl = time.Minute
	if held, err := e.svc.store.TryLease(ctx, "job/refresh", e.svc.owner, e.svc.now(), ttl); err != nil || !held {
		t.Fatalf("TryLease = %v, %v", held, err)
	}
	var mu sync.Mutex
	taken := 0
	e.plaid.repeat = true
	e.plaid.afterRead = func() {
		now := advance(ttl / 20)
		held, err := e.svc.store.TryLease(ctx, "job/refresh", "other-replica", now, ttl)
		if err != nil {
			t.Error(err)
		}
		if held {
			mu.Lock()
			taken++
			mu.Unlock()
			// Give it back at once, as a replica that found nothing due
			// would at shutdown, so the drain's next renewal can tell.
			if _, err := e.svc.store.TryLease(ctx, "job/refresh", "other-replica", now, 0); err != nil {
				t.Error(err)
			}
		}
	}
	if err := e.svc.drainRefreshes(ctx, ttl); err != nil {
		t.Fatal(err)
	}
	if taken > 0 {
		t.Errorf("another replica took the refresh lease %d times during the drain: it ran out mid-batch", taken)
	}
	if e.plaid.accountsGet != items {
		t.Errorf("/accounts/get calls = %d, want %d: one per Item", e.plaid.accountsGet, items)
	}
	if due, _ := e.svc.store.DueItemRefreshes(ctx, e.svc.now(), 2*items); len(due) != 0 {
		t.Errorf("queued refreshes left = %d, want none", len(due))
	}
}

// perItemPlaid is the real Plaid client counting /accounts/get calls per
// access token.
type perItemPlaid struct {
	linkd.Plaid
	mu    sync.Mutex
	calls map[string]int
}

func (p *perItemPlaid) GetAccounts(ctx context.Context, token linkd.AccessToken) (linkd.ItemAccounts, error) {
	p.mu.Lock()
	p.calls[token.Reveal()]++
	p.mu.Unlock()
	return p.Plaid.GetAccounts(ctx, token)
}

// TestService_RunJobs_RefreshOnceAcrossReplicas: two replicas share a
// store and run their jobs, the refresh job every 10 ms (a lease of 30 ms
// by that alone), while the emulator answers each call 20 ms late, so that
// a batch of 64 queued Items, 4 at a time, runs ~10 times longer than
// that. The drain's lease is never shorter than its Items take
// (drainLeaseTTL) and is renewed as they start, so each Item is refreshed
// once, by one replica, never by both.
func TestService_RunJobs_RefreshOnceAcrossReplicas(t *testing.T) {
	emu, pc, db := mustParts(t)
	p := &perItemPlaid{Plaid: pc, calls: map[string]int{}}
	var replicas []*Service
	for range 2 {
		s, err := New(Config{Plaid: p, Store: db, Defaults: LinkDefaults{Products: []string{"transactions"}}})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const items = 2*refreshBatch + 8
	var tokens []string
	for i := range items {
		pt, _, err := replicas[0].CreateSandboxPublicToken(ctx, "ins_109508", nil, linkd.SandboxLogin{})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := pc.ExchangePublicToken(ctx, pt)
		if err != nil {
			t.Fatal(err)
		}
		item := &linkdv1.Item{ItemId: ex.ItemID, ClientUserId: fmt.Sprintf("user-%d", i), Status: linkdv1.ItemStatus_ITEM_STATUS_GOOD}
		if _, err := db.PutItem(ctx, linkd.NewItem{Item: item, AccessToken: ex.AccessToken, RefreshAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, ex.AccessToken.Reveal())
	}
	emu.SetFaults(plaidemu.Faults{Latency: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for _, s := range replicas {
		wg.Go(func() { s.RunJobs(ctx, Jobs{RefreshEvery: 10 * time.Millisecond}) })
	}
	stop := time.After(2 * time.Minute) // a hang guard, not a timing assertion
	for {
		due, err := db.DueItemRefreshes(ctx, time.Now().Add(time.Hour), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) == 0 {
			break
		}
		select {
		case <-stop:
			t.Fatalf("the queue never drained: %q left", due)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, tok := range tokens {
		if n := p.calls[tok]; n != 1 {
			t.Errorf("Item %d: /accounts/get called %d times, want once: refreshed beside another replica", i, n)
		}
	}
}
