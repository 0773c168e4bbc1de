package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
	"github.com/linkd/linkd/webhook"
)

// mustConnectWithWebhook links an Item whose webhook URL is webhook,
// through an emulated Link session and a connected redirect.
func mustConnectWithWebhook(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient, user, session, webhook string) *linkdv1.Item {
	t.Helper()
	tok, err := c.CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{ClientUserId: user, Webhook: webhook})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	publicToken, err := ts.emulator.CreatePublicToken(tok.GetLinkToken().GetLinkToken(), "ins_109508", nil)
	if err != nil {
		t.Fatalf("emulator Link session: %v", err)
	}
	resp, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, session), LinkToken: tok.GetLinkToken().GetLinkToken()})
	if err != nil {
		t.Fatalf("SubmitRedirect(connected): %v", err)
	}
	return resp.GetItem()
}

// mustStatus fails unless the Item has status want.
func mustStatus(t *testing.T, c linkdv1.LinkServiceClient, itemID string, want linkdv1.ItemStatus) {
	t.Helper()
	got, err := c.GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: itemID})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	if got.GetItem().GetStatus() != want {
		t.Errorf("item status = %v (error_code %q), want %v", got.GetItem().GetStatus(), got.GetItem().GetErrorCode(), want)
	}
}

// TestLinkd_Webhooks walks the repair loop learning of the broken login by
// webhook, then every ITEM webhook the emulator fires, each signed by the
// emulator and verified by linkd.
func TestLinkd_Webhooks(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		item := mustConnectWithWebhook(t, ts, c, "user-1", "sess-1", ts.BaseURL+server.WebhookPath)
		id := item.GetItemId()

		// Plaid breaks the login and says so by webhook.
		if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: id}); err != nil {
			t.Fatal(err)
		}
		mustStatus(t, c, id, linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED)
		if got := mustItemsIn(t, c, "user-1", linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED); len(got) != 1 {
			t.Errorf("LOGIN_REQUIRED items = %v, want [%s]", got, id)
		}

		// Update mode repairs it. Plaid sends no webhook after an update-mode
		// session in the app (LOGIN_REPAIRED is for repairs outside it):
		// the redirect tells linkd.
		upd, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: id})
		if err != nil {
			t.Fatal(err)
		}
		publicToken, err := ts.emulator.CreatePublicToken(upd.GetLinkToken().GetLinkToken(), "ins_109508", nil)
		if err != nil {
			t.Fatal(err)
		}
		mustStatus(t, c, id, linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED)
		done, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-2"), LinkToken: upd.GetLinkToken().GetLinkToken()})
		if err != nil || done.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
			t.Fatalf("SubmitRedirect(update connected) = %v, %v", done, err)
		}
		if n := ts.emulator.Calls(exchangePath); n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1", n)
		}

		// Each ITEM webhook, sent the way Plaid's sandbox sends it (or,
		// where it cannot, the emulator).
		token, err := ts.db.AccessToken(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		fire := func(typ, code string) func() error {
			return func() error {
				_, err := c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: code, WebhookType: typ})
				return err
			}
		}
		for _, step := range []struct {
			what string
			send func() error
			want linkdv1.ItemStatus
		}{
			{"PENDING_EXPIRATION", func() error {
				_, err := c.SetEmulatorItemState(ctx, &linkdv1.SetEmulatorItemStateRequest{ItemId: id, State: "PENDING_EXPIRATION"})
				return err
			}, linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION},
			{"PENDING_DISCONNECT", fire("", "PENDING_DISCONNECT"), linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT},
			{"NEW_ACCOUNTS_AVAILABLE", fire("", "NEW_ACCOUNTS_AVAILABLE"), linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT}, // recorded only
			{"LOGIN_REPAIRED", fire("", "LOGIN_REPAIRED"), linkdv1.ItemStatus_ITEM_STATUS_GOOD},
			{"reset_login", func() error {
				_, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: id})
				return err
			}, linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED},
			{"WEBHOOK_UPDATE_ACKNOWLEDGED", func() error { // recorded only
				return ts.emulator.UpdateItemWebhook(token.Reveal(), ts.BaseURL+server.WebhookPath)
			}, linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED},
			{"DEFAULT_UPDATE", fire("TRANSACTIONS", "DEFAULT_UPDATE"), linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED}, // recorded only
			{"USER_PERMISSION_REVOKED", fire("", "USER_PERMISSION_REVOKED"), linkdv1.ItemStatus_ITEM_STATUS_REVOKED},
		} {
			if err := step.send(); err != nil {
				t.Fatalf("sending %s: %v", step.what, err)
			}
			mustStatus(t, c, id, step.want)
		}
		hooks, _, err := ts.db.ListWebhooks(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var codes []string
		for _, h := range hooks {
			codes = append(codes, h.GetWebhookType()+"/"+h.GetWebhookCode())
		}
		want := "ITEM/ERROR,ITEM/PENDING_EXPIRATION,ITEM/PENDING_DISCONNECT,ITEM/NEW_ACCOUNTS_AVAILABLE," +
			"ITEM/LOGIN_REPAIRED,ITEM/ERROR,ITEM/WEBHOOK_UPDATE_ACKNOWLEDGED,TRANSACTIONS/DEFAULT_UPDATE,ITEM/USER_PERMISSION_REVOKED"
		if got := strings.Join(codes, ","); got != want {
			t.Errorf("recorded webhooks:\n got %s\nwant %s", got, want)
		}
		// Counted by type once verified: 8 ITEM and 1 TRANSACTIONS.
		_, metrics := ts.adminGet(t, "/metrics", "")
		for _, series := range []string{`linkd_webhooks_total{type="ITEM",verification="verified"} 8`, `linkd_webhooks_total{type="TRANSACTIONS",verification="verified"} 1`} {
			if !strings.Contains(metrics, series) {
				t.Errorf("/metrics lacks %s", series)
			}
		}
	})
}

// capturedWebhook is one webhook as the emulator sent it.
type capturedWebhook struct {
	jwt  string
	body []byte
}

// webhookCatcher is a real listener standing in for linkd as an Item's
// webhook URL, so that a test holds genuine signed webhooks to replay and
// tamper with.
type webhookCatcher struct {
	mu  sync.Mutex
	got []capturedWebhook
	srv *httptest.Server
}

func newWebhookCatcher(t *testing.T) *webhookCatcher {
	c := &webhookCatcher{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.got = append(c.got, capturedWebhook{jwt: r.Header.Get("Plaid-Verification"), body: b})
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// take returns the one webhook caught since the last take.
func (c *webhookCatcher) take(t *testing.T) capturedWebhook {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) != 1 {
		t.Fatalf("caught %d webhooks, want 1", len(c.got))
	}
	w := c.got[0]
	c.got = nil
	return w
}

// postWebhook sends a webhook to linkd and returns the HTTP status.
func postWebhook(t *testing.T, ts *testServer, jwt string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.BaseURL+server.WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if jwt != "" {
		req.Header.Set("Plaid-Verification", jwt)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLinkd_WebhookVerification replays and tampers with genuine webhooks:
// each bad one is refused with 401 and changes nothing; the genuine one,
// delivered in time, is accepted.
func TestLinkd_WebhookVerification(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	ts := MustStartServerAt(t, clk.Now)
	c := ts.GRPC(t)
	ctx := context.Background()
	catcher := newWebhookCatcher(t)
	item := mustConnectWithWebhook(t, ts, c, "user-1", "sess-1", catcher.srv.URL)
	if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
		t.Fatal(err)
	}
	genuine := catcher.take(t)
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(genuine.jwt, ".")[0])
	if err := json.Unmarshal(hb, &header); err != nil || header.Alg != "ES256" || header.Kid == "" {
		t.Fatalf("emulator JWT header %s: %v", hb, err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(genuine.jwt, ".")

	nothingChanged := func(t *testing.T) {
		t.Helper()
		mustStatus(t, c, item.GetItemId(), linkdv1.ItemStatus_ITEM_STATUS_GOOD)
		if hooks, _, err := ts.db.ListWebhooks(ctx, "", 1000); err != nil || len(hooks) != 0 {
			t.Errorf("recorded webhooks = %d, %v; want none", len(hooks), err)
		}
	}
	for _, tt := range []struct {
		name string
		jwt  string
		body []byte
	}{
		{"NoHeader", "", genuine.body},
		{"NotAJWT", "not-a-jwt", genuine.body},
		{"AlgNone", enc([]byte(`{"alg":"none","kid":"`+header.Kid+`"}`)) + "." + parts[1] + ".", genuine.body},
		{"AlgHS256", enc([]byte(`{"alg":"HS256","kid":"`+header.Kid+`"}`)) + "." + parts[1] + "." + parts[2], genuine.body},
		{"ForgedSignature", parts[0] + "." + parts[1] + "." + enc(make([]byte, 64)), genuine.body},
		{"ResignedWithAnotherKey", plaidemu.SignWebhook(other, header.Kid, clk.Now(), genuine.body), genuine.body},
		{"ResignedWithUnknownKid", plaidemu.SignWebhook(other, "kid-of-the-forger", clk.Now(), genuine.body), genuine.body},
		{"BodyTampered", genuine.jwt, bytes.Replace(genuine.body, []byte(item.GetItemId()), []byte("another-item"), 1)},
		{"BodyAppended", genuine.jwt, append(bytes.Clone(genuine.body), ' ')},
		{"ClaimsTampered", parts[0] + "." + enc([]byte(`{"iat":`+itoa(clk.Now().Unix())+`,"request_body_sha256":"00"}`)) + "." + parts[2], genuine.body},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A kid Plaid disowns is refused like any forgery.
			want := http.StatusUnauthorized
			if code := postWebhook(t, ts, tt.jwt, tt.body); code != want {
				t.Errorf("HTTP %d, want %d", code, want)
			}
			nothingChanged(t)
		})
	}
	t.Run("UnknownKidsBudget", func(t *testing.T) {
		// Made-up kids cost Plaid a bounded number of key fetches a
		// minute: past the budget they are told to retry (Plaid would),
		// and a kid Plaid already disowned is refused without a fetch.
		fetches := func() int { return strings.Count(ts.Logs.String(), "path=/webhook_verification_key/get") }
		before := fetches()
		codes := map[int]int{}
		for i := range 2 * webhook.DefaultUnknownKidFetches {
			kid := "made-up-" + itoa(int64(i))
			codes[postWebhook(t, ts, plaidemu.SignWebhook(other, kid, clk.Now(), genuine.body), genuine.body)]++
		}
		if n := fetches() - before; n > webhook.DefaultUnknownKidFetches {
			t.Errorf("key fetches for %d made-up kids = %d, want at most %d a minute", 2*webhook.DefaultUnknownKidFetches, n, webhook.DefaultUnknownKidFetches)
		}
		if codes[http.StatusServiceUnavailable] == 0 || codes[http.StatusOK] != 0 {
			t.Errorf("answers to made-up kids = %v, want 401s, then 503s once the budget is spent, and no 200", codes)
		}
		before = fetches()
		if code := postWebhook(t, ts, plaidemu.SignWebhook(other, "kid-of-the-forger", clk.Now(), genuine.body), genuine.body); code != http.StatusUnauthorized {
			t.Errorf("disowned kid again: HTTP %d, want 401", code)
		}
		if n := fetches() - before; n != 0 {
			t.Errorf("key fetches for a kid Plaid disowned = %d, want 0", n)
		}
		nothingChanged(t)
	})
	t.Run("Stale", func(t *testing.T) {
		clk.Advance(webhook.DefaultMaxAge + time.Second)
		if code := postWebhook(t, ts, genuine.jwt, genuine.body); code != http.StatusUnauthorized {
			t.Errorf("HTTP %d, want 401", code)
		}
		nothingChanged(t)
	})
	t.Run("Genuine", func(t *testing.T) {
		// A fresh webhook, delivered in time, goes through.
		if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
			t.Fatal(err)
		}
		fresh := catcher.take(t)
		clk.Advance(webhook.DefaultMaxAge - time.Second) // late, but in time
		if code := postWebhook(t, ts, fresh.jwt, fresh.body); code != http.StatusOK {
			t.Fatalf("HTTP %d, want 200", code)
		}
		mustStatus(t, c, item.GetItemId(), linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED)
		if hooks, _, _ := ts.db.ListWebhooks(ctx, "", 1000); len(hooks) != 1 {
			t.Errorf("recorded webhooks = %d, want 1", len(hooks))
		}

		// Replayed within its lifetime, after the Item was repaired, the
		// same delivery is acknowledged and changes nothing.
		if _, err := ts.db.UpdateItem(ctx, item.GetItemId(), linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_GOOD, "", time.Now())); err != nil {
			t.Fatal(err)
		}
		if code := postWebhook(t, ts, fresh.jwt, fresh.body); code != http.StatusOK {
			t.Errorf("replay: HTTP %d, want 200", code)
		}
		mustStatus(t, c, item.GetItemId(), linkdv1.ItemStatus_ITEM_STATUS_GOOD)
		if hooks, _, _ := ts.db.ListWebhooks(ctx, "", 1000); len(hooks) != 1 {
			t.Errorf("recorded webhooks after a replay = %d, want 1", len(hooks))
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
