package main

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
)

// webhooksOf returns "TYPE/CODE" of every webhook linkd recorded for
// itemID, oldest first, and their bodies.
func webhooksOf(t *testing.T, ts *testServer, itemID string) ([]string, []string) {
	t.Helper()
	hooks, _, err := ts.db.ListWebhooks(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var codes, bodies []string
	for _, h := range hooks {
		if h.GetItemId() == itemID {
			codes = append(codes, h.GetWebhookType()+"/"+h.GetWebhookCode())
			bodies = append(bodies, string(h.GetBody()))
		}
	}
	return codes, bodies
}

// wantInvalid fails unless err is INVALID_ARGUMENT naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != field {
		t.Errorf("error %v names %q, want %q", err, badRequestField(st), field)
	}
}

// TestLinkd_SandboxWebhooks: FireSandboxWebhook takes what Plaid's sandbox
// fires and refuses the rest naming the field; the emulator-only
// SetEmulatorItemState sends what Plaid's sandbox cannot; linkd receives
// and records each webhook, verified.
func TestLinkd_SandboxWebhooks(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		item := mustConnectWithWebhook(t, ts, c, "user-1", "sess-1", ts.BaseURL+server.WebhookPath)
		id := item.GetItemId()

		// Plaid's sandbox cannot fire these: refused before Plaid is called.
		calls := ts.emulator.Calls("/sandbox/item/fire_webhook")
		_, err := c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "PENDING_EXPIRATION"})
		wantInvalid(t, err, "webhook_code")
		if err != nil && !strings.Contains(err.Error(), "SetEmulatorItemState") {
			t.Errorf("PENDING_EXPIRATION refused with %q, want it to name SetEmulatorItemState", err)
		}
		_, err = c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "DEFAULT_UPDATE"})
		wantInvalid(t, err, "webhook_type")
		_, err = c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "ERROR", WebhookType: "ITEM"})
		wantInvalid(t, err, "webhook_type")
		if n := ts.emulator.Calls("/sandbox/item/fire_webhook"); n != calls {
			t.Errorf("refused webhooks reached Plaid: %d calls, want %d", n, calls)
		}
		// What Plaid's sandbox fires goes through, with its type.
		if _, err := c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "DEFAULT_UPDATE", WebhookType: "TRANSACTIONS"}); err != nil {
			t.Fatalf("FireSandboxWebhook(TRANSACTIONS DEFAULT_UPDATE): %v", err)
		}
		if _, err := c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "PENDING_DISCONNECT"}); err != nil {
			t.Fatalf("FireSandboxWebhook(PENDING_DISCONNECT): %v", err)
		}

		// The emulator-only trigger sends what Plaid's sandbox cannot.
		if _, err := c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "PENDING_EXPIRATION"}); err != nil {
			t.Fatalf("SetEmulatorItemState(PENDING_EXPIRATION): %v", err)
		}
		mustStatus(t, c, id, linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION)
		_, err = c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "LOGIN_REPAIRED"})
		wantInvalid(t, err, "state") // the login is not broken
		_, err = c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "PENDING_EXPIRATION", Reason: "INSTITUTION_MIGRATION"})
		wantInvalid(t, err, "reason")
		_, err = c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "GOOD"})
		wantInvalid(t, err, "state")
		// A repair outside the app: LOGIN_REPAIRED.
		if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "LOGIN_REPAIRED"}); err != nil {
			t.Fatalf("SetEmulatorItemState(LOGIN_REPAIRED): %v", err)
		}
		mustStatus(t, c, id, linkdv1.ItemStatus_ITEM_STATUS_GOOD)
		if _, err := c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "PENDING_DISCONNECT", Reason: "INSTITUTION_MIGRATION"}); err != nil {
			t.Fatalf("SetEmulatorItemState(PENDING_DISCONNECT): %v", err)
		}

		got, bodies := webhooksOf(t, ts, id)
		want := "TRANSACTIONS/DEFAULT_UPDATE,ITEM/PENDING_DISCONNECT,ITEM/PENDING_EXPIRATION,ITEM/ERROR,ITEM/LOGIN_REPAIRED,ITEM/PENDING_DISCONNECT"
		if strings.Join(got, ",") != want {
			t.Fatalf("recorded webhooks:\n got %s\nwant %s", strings.Join(got, ","), want)
		}
		for i, mustHave := range map[int][]string{
			1: {`"reason":"INSTITUTION_MIGRATION"`, `"disconnect_time"`},
			2: {`"consent_expiration_time"`},
		} {
			for _, s := range mustHave {
				if !strings.Contains(bodies[i], s) {
					t.Errorf("%s body %s lacks %s", got[i], bodies[i], s)
				}
			}
		}
	})
}

// TestLinkd_SandboxVerificationStatus: an Item made with Plaid's automated
// micro-deposit test login has an account pending verification;
// SetSandboxVerificationStatus ends it and linkd receives the AUTH webhook.
func TestLinkd_SandboxVerificationStatus(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{
			InstitutionId: plaidemu.MicrodepositsInstitutionID, InitialProducts: []string{"auth"},
			OverrideUsername: plaidemu.MicrodepositsUsername, OverridePassword: plaidemu.MicrodepositsPassword})
		if err != nil {
			t.Fatalf("CreateSandboxPublicToken: %v", err)
		}
		ex, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "user-1"})
		if err != nil {
			t.Fatalf("ExchangePublicToken: %v", err)
		}
		id := ex.GetItem().GetItemId()
		// The Item's webhook is linkd's, so that linkd hears the AUTH webhook.
		ts.emulatorSetWebhook(t, id, ts.BaseURL+server.WebhookPath)
		accounts := ex.GetItem().GetAccounts()
		if len(accounts) != 1 {
			t.Fatalf("accounts = %v, want the one pending verification", accounts)
		}
		accountID := accounts[0].GetId()

		_, err = c.SetSandboxVerificationStatus(ctx, &linkdv1.SetSandboxVerificationStatusRequest{ItemId: id, AccountId: accountID, VerificationStatus: "manually_verified"})
		wantInvalid(t, err, "verification_status")
		_, err = c.SetSandboxVerificationStatus(ctx, &linkdv1.SetSandboxVerificationStatusRequest{ItemId: id, VerificationStatus: "automatically_verified"})
		wantInvalid(t, err, "account_id")
		if _, err := c.SetSandboxVerificationStatus(ctx, &linkdv1.SetSandboxVerificationStatusRequest{ItemId: id, AccountId: accountID, VerificationStatus: "automatically_verified"}); err != nil {
			t.Fatalf("SetSandboxVerificationStatus: %v", err)
		}
		got, bodies := webhooksOf(t, ts, id)
		if strings.Join(got, ",") != "ITEM/WEBHOOK_UPDATE_ACKNOWLEDGED,AUTH/AUTOMATICALLY_VERIFIED" || !strings.Contains(bodies[1], accountID) {
			t.Errorf("recorded webhooks = %v %v, want AUTH/AUTOMATICALLY_VERIFIED for %s", got, bodies, accountID)
		}
		// Plaid refuses an account no longer pending.
		_, err = c.SetSandboxVerificationStatus(ctx, &linkdv1.SetSandboxVerificationStatusRequest{ItemId: id, AccountId: accountID, VerificationStatus: "verification_expired"})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && plaidErrorInfo(st).GetMetadata()["error_code"] != "INVALID_FIELD" {
			t.Errorf("second SetSandboxVerificationStatus: %v, want Plaid's INVALID_FIELD", err)
		}
	})
}

// emulatorSetWebhook points the Item's webhook at url through the
// emulator, as Plaid's /item/webhook/update would.
func (ts *testServer) emulatorSetWebhook(t *testing.T, itemID, url string) {
	t.Helper()
	token, err := ts.db.AccessToken(context.Background(), itemID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.emulator.UpdateItemWebhook(token.Reveal(), url); err != nil {
		t.Fatalf("UpdateItemWebhook: %v", err)
	}
}

// TestLinkd_EmulatorOnly: without the embedded emulator (Plaid's sandbox
// or another emulator process), SetEmulatorItemState is refused with
// FAILED_PRECONDITION before anything is called; against production every
// sandbox RPC is.
func TestLinkd_EmulatorOnly(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "sandbox-client", Secret: "sandbox-secret-value"})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	ctx := context.Background()
	for _, env := range []string{"sandbox", "production"} {
		ts := MustStartServer(t, "PLAID_CLIENT_ID=sandbox-client", "PLAID_SECRET=sandbox-secret-value", "PLAID_ENV="+env, "PLAID_BASE_URL="+emu.URL())
		c := ts.GRPC(t)
		_, err := c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: "item-1", State: "PENDING_EXPIRATION"})
		wantCode(t, err, codes.FailedPrecondition)
		if env == "production" {
			_, err = c.SetSandboxVerificationStatus(ctx, &linkdv1.SetSandboxVerificationStatusRequest{ItemId: "item-1", AccountId: "acc-1", VerificationStatus: "automatically_verified"})
			wantCode(t, err, codes.FailedPrecondition)
		}
	}
	if n := emu.Calls("/sandbox/item/set_verification_status") + emu.Calls(plaidemu.EmulatorSetItemStatePath); n != 0 {
		t.Errorf("calls reaching Plaid = %d, want 0", n)
	}
}
