package plaidemu_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
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
	WantOK(t, post("/sandbox/item/fire_webhook", map[string]any{"access_token": accessToken, "webhook_code": "DEFAULT_UPDATE"}))
	hooks = received()
	if len(hooks) != 2 || hooks[0].body["webhook_code"] != "NEW_ACCOUNTS_AVAILABLE" || hooks[1].body["webhook_type"] != "TRANSACTIONS" {
		t.Fatalf("fired webhooks = %v", hooks)
	}
	verifyJWT(t, post, hooks[1])

	WantError(t, post("/webhook_verification_key/get", map[string]any{"key_id": "no-such-key"}), 400, "INVALID_REQUEST", "INVALID_FIELD")
	other, _ := MustCreateItem(t, e, "ins_109508") // no webhook URL
	WantError(t, post("/sandbox/item/fire_webhook", map[string]any{"access_token": other, "webhook_code": "ERROR"}), 400, "SANDBOX_ERROR", "SANDBOX_WEBHOOK_INVALID")
}
