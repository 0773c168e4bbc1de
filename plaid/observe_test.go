package plaid_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/plaid"
)

// TestClient_Observe: every request to Plaid is reported with its
// endpoint, Plaid's error_code and request_id, and the request_id lands
// in the call's CallInfo for its log lines; a Plaid that does not answer
// is NO_RESPONSE.
func TestClient_Observe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(plaidBody("INVALID_INPUT", "INVALID_PUBLIC_TOKEN", "bad token")))
	}))
	defer srv.Close()
	var mu sync.Mutex
	var calls []plaid.Call
	c, err := plaid.New(plaid.Config{ClientID: testClientID, Secret: testSecret, Env: linkd.PlaidSandbox, BaseURL: srv.URL, MaxAttempts: 1,
		Observe: func(call plaid.Call) { mu.Lock(); calls = append(calls, call); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info := &linkd.CallInfo{RequestID: "req-1"}
	ctx := linkd.WithCallInfo(context.Background(), info)
	if _, err := c.ExchangePublicToken(ctx, "public-sandbox-00000000-0000-0000-0000-000000000000"); err == nil {
		t.Fatal("exchange succeeded")
	}
	mu.Lock()
	got := calls
	mu.Unlock()
	if len(got) != 1 || got[0].Endpoint != "/item/public_token/exchange" || got[0].ErrorCode != "INVALID_PUBLIC_TOKEN" ||
		got[0].RequestID != "REQ123456789abc" || got[0].Duration <= 0 {
		t.Errorf("observed %+v", got)
	}
	if ids := info.PlaidRequestIDs(); ids != "REQ123456789abc" {
		t.Errorf("CallInfo Plaid request ids = %q", ids)
	}

	srv.Close()
	calls = nil
	c.ExchangePublicToken(ctx, "public-sandbox-00000000-0000-0000-0000-000000000000")
	if len(calls) != 1 || calls[0].ErrorCode != "NO_RESPONSE" {
		t.Errorf("with Plaid down, observed %+v", calls)
	}
}
