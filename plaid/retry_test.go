package plaid_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
)

var (
	apiError  = plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR", Message: "an unexpected error occurred"}
	rateLimit = plaidemu.Error{Type: plaidemu.TypeRateLimit, Code: "RATE_LIMIT", Message: "rate limit exceeded"}
	itemError = plaidemu.Error{Type: plaidemu.TypeItemError, Code: "ITEM_LOGIN_REQUIRED", Message: "login required"}
)

// failNext queues n failures for path.
func failNext(e *plaidemu.Emulator, path string, n int, perr plaidemu.Error) {
	for range n {
		e.FailNext(path, perr)
	}
}

func TestClient_Retry(t *testing.T) {
	ctx := context.Background()

	t.Run("RepeatableRetriedUntilSuccess", func(t *testing.T) {
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL())
		item := MustCreateItem(t, c)
		failNext(e, "/accounts/get", plaid.DefaultMaxAttempts-1, apiError)
		if _, err := c.GetAccounts(ctx, item.AccessToken); err != nil {
			t.Fatalf("GetAccounts after %d API_ERRORs: %v", plaid.DefaultMaxAttempts-1, err)
		}
	})
	t.Run("GivesUpAfterMaxAttempts", func(t *testing.T) {
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL())
		item := MustCreateItem(t, c)
		failNext(e, "/accounts/get", plaid.DefaultMaxAttempts+1, apiError)
		_, err := c.GetAccounts(ctx, item.AccessToken)
		WantError(t, err, linkd.EUNAVAILABLE, "INTERNAL_SERVER_ERROR", item.AccessToken.Reveal())
		// Exactly MaxAttempts were spent: one queued failure is left.
		if _, err := c.GetAccounts(ctx, item.AccessToken); err != nil {
			t.Errorf("next GetAccounts (one failure left, then success): %v", err)
		}
	})
	t.Run("MaxAttemptsOne", func(t *testing.T) {
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL(), func(cfg *plaid.Config) { cfg.MaxAttempts = 1 })
		failNext(e, "/sandbox/public_token/create", 1, apiError)
		_, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
		WantError(t, err, linkd.EUNAVAILABLE, "INTERNAL_SERVER_ERROR")
	})
	t.Run("ItemErrorNotRetried", func(t *testing.T) {
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL())
		item := MustCreateItem(t, c)
		failNext(e, "/accounts/get", 1, itemError)
		_, err := c.GetAccounts(ctx, item.AccessToken)
		WantError(t, err, linkd.EPRECONDITION, "ITEM_LOGIN_REQUIRED")
	})
	t.Run("ExchangeNotRetriedOnAPIError", func(t *testing.T) {
		// Plaid may have spent the token: sending it again could make a
		// second Item, so the error goes to the caller. The queued failure
		// is consumed and a retry would have succeeded.
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL())
		publicToken, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
		if err != nil {
			t.Fatal(err)
		}
		failNext(e, "/item/public_token/exchange", 1, apiError)
		_, err = c.ExchangePublicToken(ctx, publicToken)
		WantError(t, err, linkd.EUNAVAILABLE, "INTERNAL_SERVER_ERROR", publicToken)
		if n := e.Calls("/item/public_token/exchange"); n != 0 {
			t.Errorf("exchanges = %d, want 0", n)
		}
	})
	t.Run("ExchangeRetriedOnRateLimit", func(t *testing.T) {
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL())
		publicToken, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
		if err != nil {
			t.Fatal(err)
		}
		failNext(e, "/item/public_token/exchange", 2, rateLimit)
		if _, err := c.ExchangePublicToken(ctx, publicToken); err != nil {
			t.Fatalf("ExchangePublicToken after 2 rate limits: %v", err)
		}
		if n := e.Calls("/item/public_token/exchange"); n != 1 {
			t.Errorf("exchanges = %d, want 1", n)
		}
	})
	t.Run("ConnectionRefusedRetriedThenUnavailable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := MustNewClient(t, "http://"+addr)
		_, err = c.ExchangePublicToken(ctx, "public-sandbox-00000000-0000-0000-0000-000000000000")
		WantError(t, err, linkd.EUNAVAILABLE, "")
	})
	t.Run("StopsAtCallerDeadline", func(t *testing.T) {
		// Backoff never sleeps past the caller's deadline: with far more
		// failures queued than attempts, the call still ends, with the
		// last failure.
		e := MustStartEmulator(t)
		c := MustNewClient(t, e.URL(), func(cfg *plaid.Config) { cfg.MaxAttempts = 1000 })
		failNext(e, "/sandbox/public_token/create", 1000, apiError)
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
		WantError(t, err, linkd.EUNAVAILABLE, "INTERNAL_SERVER_ERROR")
	})
}
