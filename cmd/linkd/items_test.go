package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
)

// Items as Plaid describes them (issue #9 section 4), end to end over gRPC
// and REST against the embedded emulator: pending states cleared only by
// an update-mode session Plaid confirms, new and revoked accounts, Auth
// verification, and the reconcile job catching lost webhooks and moving
// Items to a new webhook URL.

// mustHostedItem links an Item for user through a Hosted Link session
// completed by the sandbox RPC (its webhook URL is linkd's own), and
// returns it.
func mustHostedItem(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient, user string) *linkdv1.Item {
	t.Helper()
	tok := mustHostedToken(t, ts, c, user, "")
	if _, err := c.CompleteSandboxLinkSession(context.Background(), &linkdv1.CompleteSandboxLinkSessionRequest{LinkToken: tok.GetLinkToken(), InstitutionId: "ins_109508"}); err != nil {
		t.Fatalf("CompleteSandboxLinkSession: %v", err)
	}
	items, err := c.ListItems(context.Background(), &linkdv1.ListItemsRequest{ClientUserId: user})
	if err != nil || len(items.GetItems()) != 1 {
		t.Fatalf("ListItems = %v, %v; want the one Item", items, err)
	}
	ts.WaitRefreshed(t)
	return mustGetItem(t, c, items.GetItems()[0].GetItemId())
}

// mustGetItem returns GetItem's Item.
func mustGetItem(t *testing.T, c linkdv1.LinkServiceClient, itemID string) *linkdv1.Item {
	t.Helper()
	got, err := c.GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: itemID})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	return got.GetItem()
}

// accessTokenOf returns an Item's access token from the store, for the
// emulator's own controls (tests only: no API returns it).
func accessTokenOf(t *testing.T, ts *testServer, itemID string) string {
	t.Helper()
	tok, err := ts.db.AccessToken(context.Background(), itemID)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

// mustUpdateMode completes an update-mode Hosted Link session for the
// Item, through the sandbox RPC, with account selection when selection.
func mustUpdateMode(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient, user, itemID string, selection bool) {
	t.Helper()
	req := &linkdv1.CreateLinkTokenRequest{
		ClientUserId: user, ItemId: itemID, Webhook: ts.BaseURL + server.WebhookPath,
		HostedLink: &linkdv1.HostedLink{CompletionRedirectUri: "myapp://link-done", IsMobileApp: true},
	}
	if selection {
		req.Update = &linkdv1.LinkTokenUpdate{AccountSelectionEnabled: true}
	}
	resp, err := c.CreateLinkToken(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateLinkToken(update mode): %v", err)
	}
	if _, err := c.CompleteSandboxLinkSession(context.Background(), &linkdv1.CompleteSandboxLinkSessionRequest{LinkToken: resp.GetLinkToken().GetLinkToken()}); err != nil {
		t.Fatalf("CompleteSandboxLinkSession(update mode): %v", err)
	}
}

// TestLinkd_PendingClearedByUpdateMode: PENDING_EXPIRATION and
// PENDING_DISCONNECT arrive by webhook with the consent's end; a made-up
// update-mode redirect (no session at Plaid) clears neither; an update-mode
// session completed by CompleteSandboxLinkSession, which Plaid confirms
// with the consent moved a year on, makes the Item GOOD.
func TestLinkd_PendingClearedByUpdateMode(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		item := mustHostedItem(t, ts, c, "pending-1")
		id := item.GetItemId()
		if item.GetWebhook() != ts.BaseURL+server.WebhookPath {
			t.Errorf("webhook = %q after the refresh, want Plaid's %q", item.GetWebhook(), ts.BaseURL+server.WebhookPath)
		}

		_, err := c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: plaidemu.StatePendingExpiration})
		must(t, err)
		got := mustGetItem(t, c, id)
		expires := got.GetConsentExpirationTime().AsTime()
		if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION || got.GetConsentExpirationTime() == nil {
			t.Fatalf("after PENDING_EXPIRATION: %v, want PENDING_EXPIRATION with the consent's end", got)
		}
		if d := time.Until(expires); d < 6*24*time.Hour || d > 8*24*time.Hour {
			t.Errorf("consent_expiration_time = %v, want about a week from now", expires)
		}

		// A made-up connected redirect for an update-mode token: Plaid
		// shows the consent unchanged, so nothing is cleared.
		upd, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "pending-1", ItemId: id})
		must(t, err)
		if _, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: upd.GetLinkToken().GetLinkToken(),
			Url: connectedURL("public-sandbox-made-up", "sess-made-up")}); err != nil {
			t.Fatalf("SubmitRedirect(made up): %v", err)
		}
		if got := mustGetItem(t, c, id); got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION {
			t.Fatalf("after a made-up update-mode redirect: status %v, want still PENDING_EXPIRATION", got.GetStatus())
		}

		mustUpdateMode(t, ts, c, "pending-1", id, false)
		got = mustGetItem(t, c, id)
		if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
			t.Fatalf("after update mode: status %v (error_code %q), want GOOD", got.GetStatus(), got.GetErrorCode())
		}
		if !got.GetConsentExpirationTime().AsTime().After(expires.Add(300 * 24 * time.Hour)) {
			t.Errorf("consent_expiration_time = %v after update mode, want moved about a year on from %v", got.GetConsentExpirationTime().AsTime(), expires)
		}

		_, err = c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: plaidemu.StatePendingDisconnect, Reason: "INSTITUTION_MIGRATION"})
		must(t, err)
		got = mustGetItem(t, c, id)
		if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT || got.GetPendingDisconnectReason() != "INSTITUTION_MIGRATION" {
			t.Fatalf("after PENDING_DISCONNECT: status %v, reason %q", got.GetStatus(), got.GetPendingDisconnectReason())
		}
		mustUpdateMode(t, ts, c, "pending-1", id, false)
		got = mustGetItem(t, c, id)
		if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || got.GetPendingDisconnectReason() != "" {
			t.Fatalf("after update mode: status %v, reason %q; want GOOD and no reason", got.GetStatus(), got.GetPendingDisconnectReason())
		}
	})
}

// TestLinkd_NewAndRevokedAccounts: NEW_ACCOUNTS_AVAILABLE flags the Item;
// update mode with account selection adds the new account and clears the
// flag; USER_ACCOUNT_REVOKED removes the account it names.
func TestLinkd_NewAndRevokedAccounts(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		item := mustHostedItem(t, ts, c, "accounts-1")
		id := item.GetItemId()
		before := len(item.GetAccounts())

		_, err := c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "NEW_ACCOUNTS_AVAILABLE"})
		must(t, err)
		if got := mustGetItem(t, c, id); !got.GetNewAccountsAvailable() || len(got.GetAccounts()) != before {
			t.Fatalf("after NEW_ACCOUNTS_AVAILABLE: flag %v, %d accounts; want the flag and %d accounts", got.GetNewAccountsAvailable(), len(got.GetAccounts()), before)
		}

		mustUpdateMode(t, ts, c, "accounts-1", id, true)
		got := mustGetItem(t, c, id)
		if got.GetNewAccountsAvailable() || len(got.GetAccounts()) != before+1 {
			t.Fatalf("after update mode with account selection: flag %v, %d accounts; want no flag and %d", got.GetNewAccountsAvailable(), len(got.GetAccounts()), before+1)
		}
		if !slices.ContainsFunc(got.GetAccounts(), func(a *linkdv1.Account) bool { return a.GetName() == "Plaid New Checking" }) {
			t.Errorf("accounts = %v, want the new one listed", got.GetAccounts())
		}

		first := got.GetAccounts()[0].GetId()
		_, err = c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "USER_ACCOUNT_REVOKED"})
		must(t, err)
		got = mustGetItem(t, c, id)
		if len(got.GetAccounts()) != before || slices.ContainsFunc(got.GetAccounts(), func(a *linkdv1.Account) bool { return a.GetId() == first }) {
			t.Fatalf("after USER_ACCOUNT_REVOKED of %s: accounts %v", first, got.GetAccounts())
		}
	})
}

// standaloneEmulator starts an emulator apart from linkd, as Plaid runs,
// with credentials a test knows, and returns it with the environment that
// points linkd at it.
func standaloneEmulator(t *testing.T) (*plaidemu.Emulator, []string) {
	t.Helper()
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "items-client", Secret: "items-secret"})
	must(t, err)
	t.Cleanup(func() { emu.Close() })
	return emu, []string{"PLAID_CLIENT_ID=items-client", "PLAID_SECRET=items-secret", "PLAID_ENV=sandbox", "PLAID_BASE_URL=" + emu.URL()}
}

// webhookRelay is a webhook URL known before linkd starts (on port 0):
// it forwards each delivery, headers and all, to linkd's webhook route
// once set.
type webhookRelay struct {
	srv    *httptest.Server
	target atomic.Pointer[string]
}

func newWebhookRelay(t *testing.T) *webhookRelay {
	r := &webhookRelay{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target := r.target.Load()
		if target == nil {
			http.Error(w, "no target yet", http.StatusServiceUnavailable)
			return
		}
		fwd, err := http.NewRequest(http.MethodPost, *target, req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fwd.Header = req.Header.Clone()
		resp, err := http.DefaultClient.Do(fwd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestLinkd_AuthVerificationWebhooks: an account pending automated
// micro-deposit verification (Plaid's sandbox login for it) becomes
// automatically_verified, and another Item's verification_expired, by AUTH
// webhooks that SetSandboxVerificationStatus has Plaid send to linkd's
// configured webhook URL.
func TestLinkd_AuthVerificationWebhooks(t *testing.T) {
	relay := newWebhookRelay(t)
	ts := MustStartServer(t, "LINKD_WEBHOOK="+relay.srv.URL)
	target := ts.BaseURL + server.WebhookPath
	relay.target.Store(&target)
	ctx := context.Background()
	for i, tt := range []struct {
		transport, status string
		c                 linkdv1.LinkServiceClient
	}{
		{"gRPC", plaidemu.VerificationAutomatic, ts.GRPC(t)},
		{"REST", plaidemu.VerificationExpired, ts.REST()},
	} {
		t.Run(tt.transport, func(t *testing.T) {
			c := tt.c
			pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{
				InstitutionId: plaidemu.MicrodepositsInstitutionID, InitialProducts: []string{"auth"},
				OverrideUsername: plaidemu.MicrodepositsUsername, OverridePassword: plaidemu.MicrodepositsPassword})
			must(t, err)
			ex, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: fmt.Sprintf("auth-%d", i)})
			must(t, err)
			item := ex.GetItem()
			if len(item.GetAccounts()) != 1 || item.GetAccounts()[0].GetVerificationStatus() != plaidemu.VerificationPendingAutomatic {
				t.Fatalf("Item accounts = %v, want one pending automatic verification", item.GetAccounts())
			}
			_, err = c.SetSandboxVerificationStatus(ctx, &linkdv1.SetSandboxVerificationStatusRequest{
				ItemId: item.GetItemId(), AccountId: item.GetAccounts()[0].GetId(), VerificationStatus: tt.status})
			must(t, err)
			if got := mustGetItem(t, c, item.GetItemId()).GetAccounts()[0].GetVerificationStatus(); got != tt.status {
				t.Errorf("verification_status = %q, want %q", got, tt.status)
			}
		})
	}
}

// TestLinkd_ReconcileAfterRestart: a PENDING_EXPIRATION webhook and an
// ITEM_LOGIN_REQUIRED ERROR webhook are lost while linkd runs; linkd
// restarts with a new configured webhook URL; its reconcile job finds the
// pending expiration and the broken login in /item/get, and moves both
// Items to the new URL (/item/webhook/update, acknowledged there) but not
// a third whose link token named its own URL; seen over gRPC and REST. The
// emulator runs apart, as Plaid does.
func TestLinkd_ReconcileAfterRestart(t *testing.T) {
	emu, env := standaloneEmulator(t)
	dir := t.TempDir()
	ctx := context.Background()

	relay := newWebhookRelay(t)
	ts := mustStartServerIn(t, dir, nil, append(env, "LINKD_WEBHOOK="+relay.srv.URL)...)
	target := ts.BaseURL + server.WebhookPath
	relay.target.Store(&target)
	c := ts.GRPC(t)
	var ids []string
	// Two Items on the configured URL, and one whose link token named its
	// own (the relay under another path): that one is never moved.
	appURL := relay.srv.URL + "/app"
	for _, user := range []string{"reconcile-1", "reconcile-2", "reconcile-app"} {
		req := &linkdv1.CreateLinkTokenRequest{ClientUserId: user}
		if user == "reconcile-app" {
			req.Webhook = appURL
		}
		tok, err := c.CreateLinkToken(ctx, req)
		must(t, err)
		pt, err := emu.CreatePublicToken(tok.GetLinkToken().GetLinkToken(), "ins_109508", nil)
		must(t, err)
		resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(pt, "sess-"+user), LinkToken: tok.GetLinkToken().GetLinkToken()})
		must(t, err)
		ids = append(ids, resp.GetItem().GetItemId())
	}
	emu.LoseWebhooks(2)
	must(t, emu.SetItemState(accessTokenOf(t, ts, ids[0]), plaidemu.StatePendingExpiration, ""))
	_, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: ids[1]})
	must(t, err)
	// Neither webhook came.
	mustStatus(t, c, ids[0], linkdv1.ItemStatus_ITEM_STATUS_GOOD)
	mustStatus(t, c, ids[1], linkdv1.ItemStatus_ITEM_STATUS_GOOD)
	ts.conn.Close()
	ts.conn = nil
	must(t, ts.Close())

	catcher := newWebhookCatcher(t)
	ts2 := mustStartServerIn(t, dir, nil, append(env, "LINKD_WEBHOOK="+catcher.srv.URL, "LINKD_RECONCILE_RATE=0")...)
	for _, cl := range []struct {
		name string
		c    linkdv1.LinkServiceClient
	}{{"gRPC", ts2.GRPC(t)}, {"REST", ts2.REST()}} {
		t.Run(cl.name, func(t *testing.T) {
			deadline := time.Now().Add(10 * time.Second)
			for {
				first, second, app := mustGetItem(t, cl.c, ids[0]), mustGetItem(t, cl.c, ids[1]), mustGetItem(t, cl.c, ids[2])
				done := first.GetStatus() == linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION && first.GetConsentExpirationTime() != nil &&
					app.GetWebhookRequested() && app.GetWebhook() == appURL && app.GetReconciledAt() != nil &&
					first.GetWebhook() == catcher.srv.URL && second.GetWebhook() == catcher.srv.URL &&
					second.GetStatus() == linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED && second.GetErrorCode() == "ITEM_LOGIN_REQUIRED" &&
					second.GetReconciledAt() != nil
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after restart, reconcile left:\n%v\n%v\n%v\nlogs:\n%s", first, second, app, ts2.Logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	catcher.mu.Lock()
	defer catcher.mu.Unlock()
	acks := 0
	for _, w := range catcher.got {
		if strings.Contains(string(w.body), "WEBHOOK_UPDATE_ACKNOWLEDGED") {
			acks++
		}
	}
	if acks != 2 {
		t.Errorf("WEBHOOK_UPDATE_ACKNOWLEDGED at the new URL: %d, want 2 (one per Item moved)", acks)
	}
}

// TestMain_ParseFlags_Reconcile: the reconcile flags' defaults, their
// environment fallbacks, and the refusals.
func TestMain_ParseFlags_Reconcile(t *testing.T) {
	parse := func(args []string, env map[string]string) (*Main, error) {
		m := NewMain()
		return m, m.ParseFlags(args, func(k string) string { return env[k] })
	}
	m, err := parse(nil, nil)
	if err != nil || m.Config.ReconcileEvery != 24*time.Hour || m.Config.ReconcileRate != 5 {
		t.Fatalf("defaults = %v, %v, %v; want 24h and 5/s", m.Config.ReconcileEvery, m.Config.ReconcileRate, err)
	}
	m, err = parse(nil, map[string]string{"LINKD_RECONCILE_EVERY": "6h", "LINKD_RECONCILE_RATE": "0"})
	if err != nil || m.Config.ReconcileEvery != 6*time.Hour || m.Config.ReconcileRate != 0 || reconcileRate(m.Config.ReconcileRate) >= 0 {
		t.Fatalf("from the environment = %v, %v, %v; want 6h and no cap", m.Config.ReconcileEvery, m.Config.ReconcileRate, err)
	}
	for _, args := range [][]string{{"-reconcile-every", "0"}, {"-reconcile-rate", "-1"}, {"-reconcile-every", "soon"}, {"-reconcile-rate", "NaN"}, {"-reconcile-rate", "Inf"}} {
		if _, err := parse(args, nil); err == nil {
			t.Errorf("ParseFlags(%q) accepted", args)
		}
	}
	// strconv.ParseFloat reads "NaN" and "Inf": a NaN rate is not > 0, so it
	// turned the end users' rate limit off without a word, and an infinite
	// one computed NaN buckets.
	for _, env := range []map[string]string{
		{"LINKD_RECONCILE_RATE": "NaN"}, {"LINKD_RECONCILE_RATE": "+Inf"},
		{"LINKD_USER_RATE": "NaN"}, {"LINKD_USER_RATE": "Inf"}, {"LINKD_USER_RATE": "-inf"},
	} {
		if _, err := parse(nil, env); err == nil {
			t.Errorf("ParseFlags with %v accepted", env)
		}
	}
}
