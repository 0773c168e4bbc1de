package plaidemu_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receivedWebhook is a webhook as a receiver got it.
type receivedWebhook struct {
	jwt  string
	body map[string]any
	raw  []byte
}

// mustReceiver starts a webhook receiver and returns its URL and a
// function that returns, and forgets, what it received.
func mustReceiver(t *testing.T) (string, func() []receivedWebhook) {
	var mu sync.Mutex
	var got []receivedWebhook
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		json.Unmarshal(raw, &body)
		mu.Lock()
		got = append(got, receivedWebhook{jwt: r.Header.Get("Plaid-Verification"), body: body, raw: raw})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []receivedWebhook {
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
}

// verifyJWT checks a webhook's JWT the way Plaid tells receivers to, with
// the key the emulator serves, and returns its iat.
func verifyJWT(t *testing.T, post func(path string, body any) Response, w receivedWebhook) int64 {
	t.Helper()
	parts := strings.Split(w.jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q", w.jwt)
	}
	seg := func(i int, v any) {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("JWT segment %d: %v", i, err)
		}
	}
	var header struct{ Alg, Kid, Typ string }
	var claims struct {
		Iat               int64  `json:"iat"`
		RequestBodySHA256 string `json:"request_body_sha256"`
	}
	seg(0, &header)
	seg(1, &claims)
	if header.Alg != "ES256" || header.Typ != "JWT" {
		t.Errorf("header = %+v", header)
	}
	r := post("/webhook_verification_key/get", map[string]any{"key_id": header.Kid})
	WantOK(t, r)
	key := r.Body["key"].(map[string]any)
	if key["kid"] != header.Kid || key["alg"] != "ES256" || key["kty"] != "EC" || key["crv"] != "P-256" || key["expired_at"] != nil {
		t.Errorf("JWK = %v", key)
	}
	x, _ := base64.RawURLEncoding.DecodeString(key["x"].(string))
	y, _ := base64.RawURLEncoding.DecodeString(key["y"].(string))
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatalf("JWK point: %v", err)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Error("signature does not verify")
	}
	if sum := sha256.Sum256(w.raw); hex.EncodeToString(sum[:]) != claims.RequestBodySHA256 {
		t.Error("request_body_sha256 is not the body's")
	}
	return claims.Iat
}

func TestEmulator_Webhooks(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)
	post := func(path string, body any) Response { return Post(t, e, path, body) }
	url, received := mustReceiver(t)
	r := post("/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}, "options": map[string]any{"webhook": url}})
	WantOK(t, r)
	r = post("/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")})
	WantOK(t, r)
	accessToken, itemID := r.Str("access_token"), r.Str("item_id")

	// reset_login breaks the Item and says so, signed, before answering.
	WantOK(t, post("/sandbox/item/reset_login", map[string]any{"access_token": accessToken}))
	hooks := received()
	if len(hooks) != 1 || hooks[0].body["webhook_type"] != "ITEM" || hooks[0].body["webhook_code"] != "ERROR" || hooks[0].body["item_id"] != itemID {
		t.Fatalf("webhooks after reset_login = %v", hooks)
	}
	if perr := hooks[0].body["error"].(map[string]any); perr["error_code"] != "ITEM_LOGIN_REQUIRED" {
		t.Errorf("error = %v", perr)
	}
	if iat := verifyJWT(t, post, hooks[0]); iat != clock.Now().Unix() {
		t.Errorf("iat = %d, want the emulator's now %d", iat, clock.Now().Unix())
	}
	WantError(t, post("/accounts/get", map[string]any{"access_token": accessToken}), 400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED")

	// A finished update-mode session repairs it, and no webhook follows:
	// Plaid sends LOGIN_REPAIRED only for repairs outside the app.
	body := linkTokenBody()
	delete(body, "products")
	body["access_token"] = accessToken
	r = post("/link/token/create", body)
	WantOK(t, r)
	if _, err := e.CreatePublicToken(r.Str("link_token"), "ins_109508", nil); err != nil {
		t.Fatal(err)
	}
	if hooks := received(); len(hooks) != 0 {
		t.Fatalf("webhooks after update mode = %v", hooks)
	}
	WantOK(t, post("/accounts/get", map[string]any{"access_token": accessToken}))

	// fire_webhook sends what it is asked for.
	WantOK(t, post("/sandbox/item/fire_webhook", map[string]any{"access_token": accessToken, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}))
	WantOK(t, post("/sandbox/item/fire_webhook", map[string]any{"access_token": accessToken, "webhook_code": "DEFAULT_UPDATE", "webhook_type": "AUTH"}))
	hooks = received()
	if len(hooks) != 2 || hooks[0].body["webhook_code"] != "NEW_ACCOUNTS_AVAILABLE" || hooks[1].body["webhook_type"] != "AUTH" {
		t.Fatalf("fired webhooks = %v", hooks)
	}
	verifyJWT(t, post, hooks[1])

	WantError(t, post("/webhook_verification_key/get", map[string]any{"key_id": "no-such-key"}), 400, "INVALID_REQUEST", "INVALID_FIELD")
	other, _ := MustCreateItem(t, e, "ins_109508") // no webhook URL
	WantError(t, post("/sandbox/item/fire_webhook", map[string]any{"access_token": other, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}), 400, "SANDBOX_ERROR", "SANDBOX_WEBHOOK_INVALID")
}

// TestEmulator_FireWebhook: /sandbox/item/fire_webhook takes exactly what
// Plaid's spec takes, fires each code as the webhook type Plaid describes,
// and refuses the rest as Plaid does.
func TestEmulator_FireWebhook(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	url, received := mustReceiver(t)
	all := []string{"auth", "transactions", "assets", "investments", "liabilities"}
	token, itemID := mustWebhookItem(t, e, "ins_109508", url, all, nil)
	fire := func(code, typ string) Response {
		body := map[string]any{"access_token": token, "webhook_code": code}
		if typ != "" {
			body["webhook_type"] = typ
		}
		return Post(t, e, "/sandbox/item/fire_webhook", body)
	}

	t.Run("OK", func(t *testing.T) {
		for _, tc := range []struct {
			code, typ string // request
			wantType  string
			wantField string // a field the body must have
		}{
			{"DEFAULT_UPDATE", "TRANSACTIONS", "TRANSACTIONS", "new_transactions"},
			{"DEFAULT_UPDATE", "AUTH", "AUTH", "item_id"},
			{"DEFAULT_UPDATE", "HOLDINGS", "HOLDINGS", "new_holdings"},
			{"DEFAULT_UPDATE", "INVESTMENTS_TRANSACTIONS", "INVESTMENTS_TRANSACTIONS", "new_investments_transactions"},
			{"DEFAULT_UPDATE", "LIABILITIES", "LIABILITIES", "account_ids_with_new_liabilities"},
			{"NEW_ACCOUNTS_AVAILABLE", "", "ITEM", "error"},
			{"USER_PERMISSION_REVOKED", "ITEM", "ITEM", "error"},
			{"PENDING_DISCONNECT", "", "ITEM", "disconnect_time"},
			{"LOGIN_REPAIRED", "", "ITEM", "error"},
			{"SYNC_UPDATES_AVAILABLE", "", "TRANSACTIONS", "historical_update_complete"},
			{"RECURRING_TRANSACTIONS_UPDATE", "TRANSACTIONS", "TRANSACTIONS", "account_ids"},
			{"PRODUCT_READY", "", "ASSETS", "asset_report_id"},
			{"ERROR", "ASSETS", "ASSETS", "asset_report_id"},
			{"USER_ACCOUNT_REVOKED", "", "ITEM", "account_id"},
		} {
			WantOK(t, fire(tc.code, tc.typ))
			hooks := received()
			if len(hooks) != 1 || hooks[0].body["webhook_code"] != tc.code || hooks[0].body["webhook_type"] != tc.wantType || hooks[0].body["environment"] != "sandbox" {
				t.Errorf("%s %s: webhooks = %v, want one %s %s", tc.code, tc.typ, hooks, tc.wantType, tc.code)
				continue
			}
			body := hooks[0].body
			if _, ok := body[tc.wantField]; !ok {
				t.Errorf("%s %s: body %v lacks %s", tc.code, tc.typ, body, tc.wantField)
			}
			if id, hasItem := body["item_id"]; hasItem == (tc.wantType == "ASSETS") || hasItem && id != itemID {
				t.Errorf("%s %s: item_id = %v (present %v); want %s, none for an Assets webhook", tc.code, tc.typ, id, hasItem, itemID)
			}
			switch tc.code {
			case "PENDING_DISCONNECT":
				if body["reason"] != "INSTITUTION_MIGRATION" {
					t.Errorf("PENDING_DISCONNECT reason = %v", body["reason"])
				}
			case "ERROR":
				if perr, _ := body["error"].(map[string]any); perr["error_type"] != "ASSET_REPORT_ERROR" {
					t.Errorf("ASSETS ERROR error = %v, want an ASSET_REPORT_ERROR", body["error"])
				}
			}
		}
	})

	t.Run("Refused", func(t *testing.T) {
		for _, tc := range []struct {
			code, typ        string
			status           int
			errType, errCode string
			mention          string // in error_message
		}{
			// Not in Plaid's enum: Plaid's sandbox cannot fire them.
			{"PENDING_EXPIRATION", "", 400, "INVALID_REQUEST", "INVALID_FIELD", "webhook_code"},
			{"WEBHOOK_UPDATE_ACKNOWLEDGED", "", 400, "INVALID_REQUEST", "INVALID_FIELD", "webhook_code"},
			{"AUTOMATICALLY_VERIFIED", "AUTH", 400, "INVALID_REQUEST", "INVALID_FIELD", "webhook_code"},
			{"NEW_ACCOUNTS_AVAILABLE", "IDENTITY", 400, "INVALID_REQUEST", "INVALID_FIELD", "webhook_type"},
			// ITEM_LOGIN_REQUIRED comes from reset_login.
			{"ERROR", "ITEM", 400, "INVALID_REQUEST", "INVALID_FIELD", "reset_login"},
			{"NEW_ACCOUNTS_AVAILABLE", "TRANSACTIONS", 400, "INVALID_REQUEST", "INVALID_FIELD", "ITEM"},
			{"DEFAULT_UPDATE", "", 400, "INVALID_REQUEST", "MISSING_FIELDS", "webhook_type"},
			{"DEFAULT_UPDATE", "ITEM", 400, "INVALID_REQUEST", "INVALID_FIELD", "DEFAULT_UPDATE"},
			{"AUTHORIZATION_GRANTED", "", 400, "SANDBOX_ERROR", "SANDBOX_PRODUCT_NOT_ENABLED", "product"},
			{"SMS_MICRODEPOSITS_VERIFICATION", "", 400, "INVALID_REQUEST", "INVALID_FIELD", "Same-Day"},
		} {
			msg := WantError(t, fire(tc.code, tc.typ), tc.status, tc.errType, tc.errCode)
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("%s %s: error_message %q does not mention %q", tc.code, tc.typ, msg, tc.mention)
			}
		}
		// The product a webhook is about must be on the Item.
		authOnly, _ := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
		for _, body := range []map[string]any{
			{"webhook_code": "ERROR"},
			{"webhook_code": "SYNC_UPDATES_AVAILABLE"},
			{"webhook_code": "DEFAULT_UPDATE", "webhook_type": "TRANSACTIONS"},
		} {
			body["access_token"] = authOnly
			WantError(t, Post(t, e, "/sandbox/item/fire_webhook", body), 400, "SANDBOX_ERROR", "SANDBOX_PRODUCT_NOT_ENABLED")
		}
		if hooks := received(); len(hooks) != 0 {
			t.Errorf("refused calls sent %v", hooks)
		}
	})
}

// A request's webhooks reach the receiver before that request is
// answered, even while other requests run: a concurrent request must not
// take them and deliver them after the answer (an app reading its Item
// right after reset_login would see it still GOOD).
func TestEmulator_WebhooksBeforeAnswer_Concurrent(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	post := func(path string, body any) Response { return Post(t, e, path, body) }
	var mu sync.Mutex
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond) // a receiver that takes its time
		mu.Lock()
		got++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r := post("/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}, "options": map[string]any{"webhook": srv.URL}})
	WantOK(t, r)
	r = post("/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")})
	WantOK(t, r)
	accessToken := r.Str("access_token")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { // other callers, whose requests queue no webhook
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"access_token": accessToken})
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, e.URL()+"/item/get", bytes.NewReader(body))
				req.Header = http.Header{"Plaid-Client-Id": {testClientID}, "Plaid-Secret": {testSecret}, "Content-Type": {"application/json"}}
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for i := 1; i <= 1000; i++ {
		WantOK(t, post("/sandbox/item/reset_login", map[string]any{"access_token": accessToken}))
		mu.Lock()
		n := got
		mu.Unlock()
		if n != i {
			t.Fatalf("after reset_login #%d the receiver had %d webhooks, want %d", i, n, i)
		}
	}
}

// TestEmulator_WebhookUpdateBesideReads: /accounts/get and /item/get
// answers are encoded after the emulator's lock is released, so they must
// not point into an Item that /item/webhook/update changes meanwhile
// (under -race, `make race`, the old code's shared string is reported).
func TestEmulator_WebhookUpdateBesideReads(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}, "options": map[string]any{"webhook": "https://a.example/hook"}})
	WantOK(t, r)
	r = Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")})
	WantOK(t, r)
	accessToken := r.Str("access_token")
	send := func(path string, body map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, e.URL()+path, bytes.NewReader(b))
		req.Header = http.Header{"Plaid-Client-Id": {testClientID}, "Plaid-Secret": {testSecret}, "Content-Type": {"application/json"}}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	var wg sync.WaitGroup
	for _, path := range []string{"/accounts/get", "/item/get"} {
		wg.Go(func() {
			for range 100 {
				send(path, map[string]any{"access_token": accessToken})
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			send("/item/webhook/update", map[string]any{"access_token": accessToken, "webhook": fmt.Sprintf("https://a.example/hook-%d", i)})
		}
	})
	wg.Wait()
	r = Post(t, e, "/item/get", map[string]any{"access_token": accessToken})
	WantOK(t, r)
	if got := r.Body["item"].(map[string]any)["webhook"]; got != "https://a.example/hook-99" {
		t.Errorf("webhook after the updates = %v, want the last one", got)
	}
}
