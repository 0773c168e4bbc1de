package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/store"
)

// hookingStore runs before once, before the next UpdateRefreshedItem: a
// webhook another replica applies while this one asked Plaid.
type hookingStore struct {
	*store.DB
	before atomic.Pointer[func()]
}

func (h *hookingStore) UpdateRefreshedItem(ctx context.Context, itemID string, fn func(*linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	if f := h.before.Swap(nil); f != nil {
		(*f)()
	}
	return h.DB.UpdateRefreshedItem(ctx, itemID, fn)
}

// skewedReplica is a Service over e's store and emulator whose clock runs
// skew ahead of (behind, when negative) the reader's.
func skewedReplica(t *testing.T, e *env, st linkd.Store, reader *clock, skew time.Duration) *service.Service {
	t.Helper()
	svc, err := service.New(service.Config{Plaid: mustPlaid(t, e), Store: st, Now: func() time.Time { return reader.Now().Add(skew) },
		Defaults: service.LinkDefaults{ClientName: "test", Products: []string{"transactions"}, CountryCodes: []string{"US"}, Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// queuedItem links an Item through a connected redirect on svc, which
// queues its refresh, and returns it.
func queuedItem(t *testing.T, e *env, svc *service.Service, user string) *linkdv1.Item {
	t.Helper()
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	tok, err := svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
	if err != nil {
		t.Fatal(err)
	}
	sessionID, publicToken, err := e.emu.CompleteLinkSession(tok.GetLinkToken(), "ins_109508", "")
	if err != nil {
		t.Fatal(err)
	}
	var stored *storagev1.StoredLinkToken
	if stored, err = svc.LinkToken(ctx, tok.GetLinkToken()); err != nil {
		t.Fatal(err)
	}
	out, err := svc.SubmitRedirect(ctx, stored, &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: publicToken, LinkSessionId: sessionID, InstitutionId: "ins_109508"}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// TestService_RefreshQueued_ReplicaClockAhead: a webhook applied by a
// replica whose clock runs ten seconds ahead, before this replica's
// refresh began, is no news to the refresh: it must not read Plaid again
// and again and give up (ErrStaleRead) because of the other clock.
func TestService_RefreshQueued_ReplicaClockAhead(t *testing.T) {
	e := mustEnv(t)
	reader, clk := clockedService(t, e, "")
	ahead := skewedReplica(t, e, e.db, clk, 10*time.Second)
	id := queuedItem(t, e, reader, "user-1").GetItemId()

	deliver(t, ahead, "", `{"webhook_type":"ITEM","webhook_code":"NEW_ACCOUNTS_AVAILABLE","item_id":"`+id+`","error":null,"environment":"sandbox"}`)
	clk.Add(time.Second) // the refresh begins after the webhook
	gets := e.emu.Calls("/accounts/get")
	n, err := reader.RefreshQueued(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("RefreshQueued = %d, %v; want the Item refreshed", n, err)
	}
	if got := e.emu.Calls("/accounts/get") - gets; got != 1 {
		t.Errorf("/accounts/get calls = %d, want 1: the webhook came before the refresh", got)
	}
}

// TestService_RefreshQueued_ReplicaClockBehind: a replica whose clock
// runs ten seconds behind applies USER_ACCOUNT_REVOKED while this one
// reads the accounts from Plaid. Its stamp is older than the read, yet
// the read is stale: stored, it would list the revoked account again.
func TestService_RefreshQueued_ReplicaClockBehind(t *testing.T) {
	e := mustEnv(t)
	hs := &hookingStore{DB: e.db}
	clk := &clock{t: time.Now()}
	reader := skewedReplica(t, e, hs, clk, 0)
	behind := skewedReplica(t, e, e.db, clk, -10*time.Second)
	id := queuedItem(t, e, reader, "user-1").GetItemId()
	token, err := e.db.AccessToken(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := mustPlaid(t, e).GetAccounts(context.Background(), token)
	if err != nil || len(acc.Accounts) < 2 {
		t.Fatalf("/accounts/get = %v, %v; want two accounts or more", acc.Accounts, err)
	}
	revoked := acc.Accounts[0].GetId() // the account the sandbox revokes
	// The sandbox fires webhooks only for an Item with a webhook URL.
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(sink.Close)
	if err := e.emu.UpdateItemWebhook(token.Reveal(), sink.URL); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)

	// Between this replica's /accounts/get and its write, the bank
	// revokes the account (Plaid drops it) and the other replica applies
	// the webhook.
	f := func() {
		if _, err := mustPlaid(t, e).FireSandboxWebhook(context.Background(), token, "ITEM", "USER_ACCOUNT_REVOKED"); err != nil {
			t.Errorf("fire USER_ACCOUNT_REVOKED: %v", err)
		}
		deliver(t, behind, "", `{"webhook_type":"ITEM","webhook_code":"USER_ACCOUNT_REVOKED","item_id":"`+id+`","account_id":"`+revoked+`","environment":"sandbox"}`)
	}
	hs.before.Store(&f)
	if n, err := reader.RefreshQueued(context.Background()); err != nil || n != 1 {
		t.Fatalf("RefreshQueued = %d, %v; want the Item refreshed", n, err)
	}
	got, err := e.db.GetItem(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(got.GetAccounts(), func(a *linkdv1.Account) bool { return a.GetId() == revoked }) {
		t.Fatalf("accounts = %v after the refresh; the revoked account %s is listed again", got.GetAccounts(), revoked)
	}
}
