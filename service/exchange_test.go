package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/service"
)

// mustPublicToken returns a fresh sandbox public token from the emulator,
// through a link token of user.
func mustPublicToken(t *testing.T, e *env, user string) string {
	t.Helper()
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	tok, err := e.svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := e.emu.CreatePublicToken(tok.GetLinkToken(), "ins_109508", nil)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// mustReplica returns another Service over e's store and Plaid, as a
// second replica of linkd is: its own owner id in exchange claims.
func mustReplica(t *testing.T, e *env, p linkd.Plaid) *service.Service {
	t.Helper()
	svc, err := service.New(service.Config{Plaid: p, Store: e.db, Defaults: service.LinkDefaults{
		ClientName: "test", Products: []string{"transactions"}, CountryCodes: []string{"US"}, Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// mustPlaid returns a Plaid client for e's emulator.
func mustPlaid(t *testing.T, e *env) *plaid.Client {
	t.Helper()
	pc, err := plaid.New(plaid.Config{ClientID: "svc-test", Secret: "svc-secret", Env: linkd.PlaidSandbox, BaseURL: e.emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	return pc
}

// TestService_Exchange_DefiniteFailureReleasesClaim: Plaid refuses an
// exchange outright (nothing happened at Plaid), so the claim must go with
// the failure: a retry on another replica exchanges at once instead of
// waiting out the claim's TTL (15 s) as if an exchange were under way.
func TestService_Exchange_DefiniteFailureReleasesClaim(t *testing.T) {
	e := mustEnv(t)
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	pt := mustPublicToken(t, e, "user-1")
	e.emu.FailNext("/item/public_token/exchange", plaidemu.Error{Type: plaidemu.TypeInstitution, Code: "INSTITUTION_DOWN", Message: "down (injected)"})
	if _, err := e.svc.ExchangePublicToken(ctx, pt, "user-1"); linkd.ErrorCode(err) != linkd.EUNAVAILABLE {
		t.Fatalf("first exchange: %v (code %q), want Plaid's INSTITUTION_DOWN as EUNAVAILABLE", err, linkd.ErrorCode(err))
	}

	replica := mustReplica(t, e, mustPlaid(t, e))
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	item, err := replica.ExchangePublicToken(rctx, pt, "user-1")
	if err != nil {
		t.Fatalf("retry on another replica: %v, want the Item (the failed exchange's claim was not released)", err)
	}
	if got, err := e.db.ItemForPublicToken(ctx, pt); err != nil || got.GetItemId() != item.GetItemId() {
		t.Errorf("stored Item = %v, %v; want %s", got, err, item.GetItemId())
	}
	if n := e.emu.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("successful Plaid exchanges = %d, want 1", n)
	}
}

// cancelAfterExchange is a Plaid that ends the caller's request the moment
// Plaid has answered an exchange, as a client that hangs up then does.
type cancelAfterExchange struct {
	linkd.Plaid
	cancel context.CancelFunc
}

func (p cancelAfterExchange) ExchangePublicToken(ctx context.Context, publicToken string) (linkd.ExchangeResult, error) {
	res, err := p.Plaid.ExchangePublicToken(ctx, publicToken)
	p.cancel()
	return res, err
}

// TestService_Exchange_StoredAfterCallerCancels: once Plaid has exchanged
// the token (and billed the Item), the Item is stored whatever becomes of
// the caller; storing it under the caller's context would retry a
// canceled write for ever and lose the access token.
func TestService_Exchange_StoredAfterCallerCancels(t *testing.T) {
	e := mustEnv(t)
	pt := mustPublicToken(t, e, "user-1")
	ctx, cancel := context.WithCancel(linkd.WithCaller(context.Background(), linkd.Caller{Service: true}))
	defer cancel()
	svc := mustReplica(t, e, cancelAfterExchange{Plaid: mustPlaid(t, e), cancel: cancel})
	_, err := svc.ExchangePublicToken(ctx, pt, "user-1")
	t.Logf("canceled caller heard: %v", err)

	bg := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for {
		item, err := e.db.ItemForPublicToken(bg, pt)
		if err == nil {
			if _, err := e.db.AccessToken(bg, item.GetItemId()); err != nil {
				t.Fatalf("access token of the stored Item: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Item Plaid exchanged was not stored 5 s after its caller left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The caller's retry finds it, with no second exchange.
	item, err := svc.ExchangePublicToken(linkd.WithCaller(bg, linkd.Caller{Service: true}), pt, "user-1")
	if err != nil || item == nil {
		t.Fatalf("retry: %v, %v", item, err)
	}
	if n := e.emu.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("Plaid exchanges = %d, want 1", n)
	}
}

// slowExchange is a Plaid whose exchange answers only after hold: Plaid
// has spent the token, the answer is on its way.
type slowExchange struct {
	linkd.Plaid
	hold time.Duration
}

func (p slowExchange) ExchangePublicToken(ctx context.Context, publicToken string) (linkd.ExchangeResult, error) {
	res, err := p.Plaid.ExchangePublicToken(ctx, publicToken)
	time.Sleep(p.hold)
	return res, err
}

// TestService_Exchange_ClaimRenewedWhilePlaidAnswers: an exchange whose
// Plaid call outlasts the claim's TTL keeps its claim (renewed at a third
// of the TTL), so another replica waits for it instead of taking over and
// asking Plaid a second time, and every caller gets the one Item.
func TestService_Exchange_ClaimRenewedWhilePlaidAnswers(t *testing.T) {
	e := mustEnv(t)
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	pt := mustPublicToken(t, e, "user-1")
	const ttl = 600 * time.Millisecond
	slow, err := service.New(service.Config{Plaid: slowExchange{Plaid: mustPlaid(t, e), hold: 4 * ttl}, Store: e.db, ClaimTTL: ttl,
		Defaults: service.LinkDefaults{ClientName: "test", Products: []string{"transactions"}, CountryCodes: []string{"US"}, Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	var item *linkdv1.Item
	go func() {
		var err error
		item, err = slow.ExchangePublicToken(ctx, pt, "user-1")
		first <- err
	}()
	for e.emu.Calls("/item/public_token/exchange") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// Past the TTL, while the first call still waits for Plaid's answer.
	rctx, cancel := context.WithTimeout(ctx, 2*ttl)
	defer cancel()
	if _, err := mustReplica(t, e, mustPlaid(t, e)).ExchangePublicToken(rctx, pt, "user-1"); linkd.ErrorCode(err) != linkd.EUNAVAILABLE {
		t.Errorf("another replica during the exchange: %v (code %q), want EUNAVAILABLE: the exchange is under way", err, linkd.ErrorCode(err))
	}
	if err := <-first; err != nil {
		t.Fatalf("the slow exchange: %v", err)
	}
	again, err := mustReplica(t, e, mustPlaid(t, e)).ExchangePublicToken(ctx, pt, "user-1")
	if err != nil || again.GetItemId() != item.GetItemId() {
		t.Errorf("another replica afterwards: %v, %v; want Item %s", again, err, item.GetItemId())
	}
	if n := e.emu.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("Plaid exchanges = %d, want 1 (the claim lapsed and was taken over)", n)
	}
}
