package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

// TestLinkd_ExchangeOutcomeUnknown covers exchanges whose answer never
// comes back: linkd says it cannot tell (UNAVAILABLE), a retry completes the
// exchange when Plaid had done nothing, and when Plaid had spent the token
// the retry says so instead of failing as a bad token; in no case is there
// a second Plaid exchange or a second Item.
func TestLinkd_ExchangeOutcomeUnknown(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "unknown-client", Secret: "unknown-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ts := MustStartServer(t, "PLAID_CLIENT_ID=unknown-client", "PLAID_SECRET=unknown-secret",
		"PLAID_BASE_URL="+emu.URL(), "PLAID_TIMEOUT=300ms")
	c := ts.GRPC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	exchange := func(user, publicToken string) (*linkdv1.Item, error) {
		resp, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: publicToken, ClientUserId: user})
		return resp.GetItem(), err
	}
	sandboxToken := func() string {
		pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
		if err != nil {
			t.Fatal(err)
		}
		return pt.GetPublicToken()
	}

	t.Run("PlaidDidNothing", func(t *testing.T) {
		publicToken := sandboxToken()
		before := emu.Calls(exchangePath)
		emu.SetFaults(plaidemu.Faults{Latency: time.Second}) // the request times out before Plaid acts
		_, err := exchange("user-a", publicToken)
		emu.SetFaults(plaidemu.Faults{})
		if st := wantCode(t, err, codes.Unavailable); st != nil && !strings.Contains(st.Message(), "cannot tell") {
			t.Errorf("message %q does not say the outcome is unknown", st.Message())
		}
		item, err := exchange("user-a", publicToken)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if n := emu.Calls(exchangePath) - before; n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1", n)
		}
		again, err := exchange("user-a", publicToken)
		if err != nil || again.GetItemId() != item.GetItemId() {
			t.Errorf("second retry = %v, %v; want item %s", again, err, item.GetItemId())
		}
	})

	t.Run("PlaidActedButNoAnswer", func(t *testing.T) {
		publicToken := sandboxToken()
		before := emu.Calls(exchangePath)
		emu.HangAfterNext(exchangePath)
		_, err := exchange("user-b", publicToken)
		wantCode(t, err, codes.Unavailable)
		if n := emu.Calls(exchangePath) - before; n != 1 {
			t.Fatalf("Plaid exchanges = %d, want 1 (the emulator acted)", n)
		}
		_, err = exchange("user-b", publicToken)
		if st := wantCode(t, err, codes.FailedPrecondition); st != nil {
			if badRequestField(st) != "public_token" || plaidErrorInfo(st).GetMetadata()["error_code"] != "INVALID_PUBLIC_TOKEN" {
				t.Errorf("details = %v, want field public_token and Plaid INVALID_PUBLIC_TOKEN", st.Details())
			}
		}
		list, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-b"})
		if err != nil || len(list.GetItems()) != 0 {
			t.Errorf("ListItems = %v, %v; want none", list, err)
		}
		if n := emu.Calls(exchangePath) - before; n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1", n)
		}
	})

	t.Run("OtherUserWhilePending", func(t *testing.T) {
		publicToken := sandboxToken()
		emu.HangAfterNext(exchangePath)
		_, err := exchange("user-c", publicToken)
		wantCode(t, err, codes.Unavailable)
		_, err = exchange("user-d", publicToken)
		wantCode(t, err, codes.AlreadyExists)
	})
}

// TestLinkd_ExchangeStoredBeforeAccounts: once Plaid has spent the public
// token, the Item and its access token are stored before linkd asks for the
// accounts, so a slow /accounts/get (or a caller giving up) cannot lose them.
func TestLinkd_ExchangeStoredBeforeAccounts(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "slow-client", Secret: "slow-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ts := MustStartServer(t, "PLAID_CLIENT_ID=slow-client", "PLAID_SECRET=slow-secret",
		"PLAID_BASE_URL="+emu.URL(), "PLAID_TIMEOUT=3s")
	c := ts.GRPC(t)
	pt, err := c.CreateSandboxPublicToken(context.Background(), &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // every attempt of the client's retries hangs
		emu.HangAfterNext("/accounts/get")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "user-slow"})
	cancel()
	wantCode(t, err, codes.DeadlineExceeded)

	items, err := ts.db.ListItems(context.Background(), "user-slow")
	if err != nil || len(items) != 1 {
		t.Fatalf("stored Items while /accounts/get hangs = %v, %v; want the exchanged Item", items, err)
	}
	if _, err := ts.db.AccessToken(context.Background(), items[0].GetItemId()); err != nil {
		t.Errorf("access token not stored: %v", err)
	}
}
