package plaid_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
)

const (
	testClientID = "test-client-id"
	testSecret   = "test-secret-do-not-leak"
)

// MustStartEmulator starts plaidemu on loopback with the test credentials and
// closes it at cleanup.
func MustStartEmulator(tb testing.TB) *plaidemu.Emulator {
	tb.Helper()
	e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// MustNewClient returns a sandbox client with the test credentials for
// baseURL; edit changes the config first.
func MustNewClient(tb testing.TB, baseURL string, edit ...func(*plaid.Config)) *plaid.Client {
	tb.Helper()
	cfg := plaid.Config{ClientID: testClientID, Secret: testSecret, Env: linkd.PlaidSandbox, BaseURL: baseURL, Timeout: 5 * time.Second}
	for _, f := range edit {
		f(&cfg)
	}
	c, err := plaid.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// WantError fails unless err is a *linkd.Error with code and, when
// plaidCode is not "", a Plaid error with that code. It also fails when the
// error text holds the secret or any of tokens. It returns the error.
func WantError(tb testing.TB, err error, code, plaidCode string, tokens ...string) *linkd.Error {
	tb.Helper()
	var e *linkd.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v (%T), want a *linkd.Error", err, err)
	}
	if e.Code != code {
		tb.Fatalf("code = %s, want %s; err %v", e.Code, code, e)
	}
	switch {
	case plaidCode == "" && e.Plaid != nil:
		tb.Errorf("Plaid = %+v, want nil", e.Plaid)
	case plaidCode != "" && (e.Plaid == nil || e.Plaid.ErrorCode != plaidCode):
		tb.Fatalf("Plaid = %+v, want error_code %s", e.Plaid, plaidCode)
	}
	text := e.Error()
	if e.Plaid != nil {
		text += e.Plaid.ErrorMessage + e.Plaid.DisplayMessage
	}
	for _, s := range append(tokens, testSecret) {
		if s != "" && strings.Contains(text, s) {
			tb.Errorf("error %q leaks %q", text, s)
		}
	}
	return e
}

func linkTokenOptions() linkd.LinkTokenOptions {
	return linkd.LinkTokenOptions{
		ClientUserID: "user-1",
		ClientName:   "linkd test",
		Products:     []string{"auth"},
		CountryCodes: []string{"US"},
		Language:     "en",
	}
}

// MustCreateItem makes an Item at First Platypus Bank through the client.
func MustCreateItem(tb testing.TB, c *plaid.Client) linkd.ExchangeResult {
	tb.Helper()
	ctx := context.Background()
	publicToken, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
	if err != nil {
		tb.Fatal(err)
	}
	res, err := c.ExchangePublicToken(ctx, publicToken)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func TestNew(t *testing.T) {
	ok := plaid.Config{ClientID: "id", Secret: "secret", Env: linkd.PlaidProduction}
	tests := []struct {
		name  string
		edit  func(*plaid.Config)
		field string
	}{
		{"ErrNoEnv", func(c *plaid.Config) { c.Env = "" }, "PLAID_ENV"},
		{"ErrEnv", func(c *plaid.Config) { c.Env = "development" }, "PLAID_ENV"},
		{"ErrNoClientID", func(c *plaid.Config) { c.ClientID = "" }, "PLAID_CLIENT_ID"},
		{"ErrNoSecret", func(c *plaid.Config) { c.Secret = "" }, "PLAID_SECRET"},
		{"ErrTimeout", func(c *plaid.Config) { c.Timeout = -time.Second }, "PLAID_TIMEOUT"},
		{"ErrBaseURLRelative", func(c *plaid.Config) { c.BaseURL = "localhost:8080" }, "PLAID_BASE_URL"},
		{"ErrBaseURLScheme", func(c *plaid.Config) { c.BaseURL = "ftp://plaid.example.com" }, "PLAID_BASE_URL"},
		{"ErrBaseURLUser", func(c *plaid.Config) { c.BaseURL = "https://u:p@plaid.example.com" }, "PLAID_BASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := plaid.New(cfg)
			if e := WantError(t, err, linkd.EINVALID, ""); e.Field != tt.field {
				t.Errorf("Field = %q, want %q", e.Field, tt.field)
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		c, err := plaid.New(ok)
		if err != nil {
			t.Fatal(err)
		}
		if c.Environment() != linkd.PlaidProduction {
			t.Errorf("Environment = %q", c.Environment())
		}
	})
}

func TestClient_CreateLinkToken(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		opts := linkTokenOptions()
		opts.RedirectURI = "https://app.example.com/plaid"
		opts.AndroidPackageName = "com.example.app"
		opts.Webhook = "https://hooks.example.com/plaid"
		before := time.Now()
		res, err := c.CreateLinkToken(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.LinkToken, "link-sandbox-") || res.RequestID == "" {
			t.Errorf("result = %+v", res)
		}
		if d := res.Expiration.Sub(before); d < 4*time.Hour-time.Minute || d > 4*time.Hour+time.Minute {
			t.Errorf("Expiration %v is not 4h away", res.Expiration)
		}
	})

	tests := []struct {
		field string
		edit  func(*linkd.LinkTokenOptions)
	}{
		{"client_user_id", func(o *linkd.LinkTokenOptions) { o.ClientUserID = "" }},
		{"client_name", func(o *linkd.LinkTokenOptions) { o.ClientName = "" }},
		{"language", func(o *linkd.LinkTokenOptions) { o.Language = "" }},
		{"country_codes", func(o *linkd.LinkTokenOptions) { o.CountryCodes = nil }},
		{"products", func(o *linkd.LinkTokenOptions) { o.Products = []string{} }},
	}
	for _, tt := range tests {
		t.Run("ErrNo_"+tt.field, func(t *testing.T) {
			opts := linkTokenOptions()
			tt.edit(&opts)
			_, err := c.CreateLinkToken(ctx, opts)
			if e := WantError(t, err, linkd.EINVALID, ""); e.Field != tt.field {
				t.Errorf("Field = %q, want %q", e.Field, tt.field)
			}
		})
	}

	t.Run("ErrPlaidInvalidField", func(t *testing.T) {
		opts := linkTokenOptions()
		opts.CountryCodes = []string{"XX"}
		_, err := c.CreateLinkToken(ctx, opts)
		e := WantError(t, err, linkd.EINVALID, "INVALID_FIELD")
		if e.Plaid.ErrorType != "INVALID_REQUEST" || e.Plaid.HTTPStatus != 400 || e.Plaid.RequestID == "" {
			t.Errorf("Plaid = %+v", e.Plaid)
		}
	})

	if got := e.Calls("/link/token/create"); got != 1 {
		t.Errorf("Calls = %d, want 1", got)
	}
}

func TestClient_ExchangePublicToken(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	publicToken, requestID, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(publicToken, "public-sandbox-") || requestID == "" {
		t.Fatalf("public token %q, request_id %q", publicToken, requestID)
	}

	t.Run("OK", func(t *testing.T) {
		res, err := c.ExchangePublicToken(ctx, publicToken)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.AccessToken.Reveal(), "access-sandbox-") || len(res.ItemID) != 37 || res.RequestID == "" {
			t.Errorf("result = %+v (token %q)", res, res.AccessToken.Reveal())
		}
	})
	t.Run("ErrReused", func(t *testing.T) {
		_, err := c.ExchangePublicToken(ctx, publicToken)
		e := WantError(t, err, linkd.EINVALID, "INVALID_PUBLIC_TOKEN", publicToken)
		if e.Field != "public_token" || e.Plaid.RequestID == "" || e.Plaid.ErrorType != "INVALID_INPUT" || e.Plaid.HTTPStatus != 400 {
			t.Errorf("err = %+v, Plaid %+v", e, e.Plaid)
		}
	})
	t.Run("ErrEmpty", func(t *testing.T) {
		_, err := c.ExchangePublicToken(ctx, "")
		if e := WantError(t, err, linkd.EINVALID, ""); e.Field != "public_token" {
			t.Errorf("Field = %q", e.Field)
		}
	})
	if got := e.Calls("/item/public_token/exchange"); got != 1 {
		t.Errorf("Calls = %d, want 1", got)
	}
}

func TestClient_GetAccounts(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	item := MustCreateItem(t, c)

	t.Run("OK", func(t *testing.T) {
		got, err := c.GetAccounts(ctx, item.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if got.ItemID != item.ItemID || got.InstitutionID != "ins_109508" || got.InstitutionName != "First Platypus Bank" || got.RequestID == "" {
			t.Errorf("got %+v", got)
		}
		want := plaidemu.Institutions()[0].Accounts
		if len(got.Accounts) != len(want) {
			t.Fatalf("%d accounts, want %d", len(got.Accounts), len(want))
		}
		for i, a := range got.Accounts {
			w := want[i]
			if a.GetId() != w.ID || a.GetName() != w.Name || a.GetMask() != w.Mask || a.GetType() != w.Type || a.GetSubtype() != w.Subtype {
				t.Errorf("account %d = %v, want %+v", i, a, w)
			}
		}
		if e.Calls("/item/get") != 0 {
			t.Error("called /item/get although /accounts/get named the institution")
		}
	})

	t.Run("OKInstitutionNameFromItemGet", func(t *testing.T) {
		// A Plaid whose /accounts/get Item lacks institution_name.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/accounts/get" {
				e.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, r)
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Error(err)
			}
			delete(body["item"].(map[string]any), "institution_name")
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(body)
		}))
		defer srv.Close()
		got, err := MustNewClient(t, srv.URL).GetAccounts(ctx, item.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if got.InstitutionName != "First Platypus Bank" || e.Calls("/item/get") != 1 {
			t.Errorf("InstitutionName = %q, /item/get calls %d", got.InstitutionName, e.Calls("/item/get"))
		}
	})

	t.Run("ErrUnknownAccessToken", func(t *testing.T) {
		token := "access-sandbox-00000000-0000-0000-0000-000000000000"
		_, err := c.GetAccounts(ctx, linkd.NewAccessToken(token))
		WantError(t, err, linkd.EPRECONDITION, "INVALID_ACCESS_TOKEN", token)
	})
	t.Run("ErrZeroToken", func(t *testing.T) {
		_, err := c.GetAccounts(ctx, linkd.AccessToken{})
		WantError(t, err, linkd.EINTERNAL, "")
	})
}

func TestClient_RemoveItem(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	item := MustCreateItem(t, c)
	token := item.AccessToken.Reveal()

	requestID, err := c.RemoveItem(ctx, item.AccessToken)
	if err != nil || requestID == "" {
		t.Fatalf("RemoveItem = %q, %v", requestID, err)
	}
	_, err = c.RemoveItem(ctx, item.AccessToken)
	WantError(t, err, linkd.EPRECONDITION, "ITEM_NOT_FOUND", token)
	_, err = c.GetAccounts(ctx, item.AccessToken)
	e2 := WantError(t, err, linkd.EPRECONDITION, "ITEM_NOT_FOUND", token)
	if e2.Plaid.ErrorType != "ITEM_ERROR" || e2.Plaid.RequestID == "" {
		t.Errorf("Plaid = %+v", e2.Plaid)
	}
	_, err = c.RemoveItem(ctx, linkd.AccessToken{})
	WantError(t, err, linkd.EINTERNAL, "")
}

func TestClient_CreateSandboxPublicToken(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()

	t.Run("ErrInstitution", func(t *testing.T) {
		_, _, err := c.CreateSandboxPublicToken(ctx, "ins_0", []string{"auth"}, "", linkd.SandboxLogin{})
		if e := WantError(t, err, linkd.EINVALID, "INVALID_INSTITUTION"); e.Field != "institution_id" {
			t.Errorf("Field = %q", e.Field)
		}
	})
	t.Run("ErrMissing", func(t *testing.T) {
		_, _, err := c.CreateSandboxPublicToken(ctx, "", []string{"auth"}, "", linkd.SandboxLogin{})
		if e := WantError(t, err, linkd.EINVALID, ""); e.Field != "institution_id" {
			t.Errorf("Field = %q", e.Field)
		}
		_, _, err = c.CreateSandboxPublicToken(ctx, "ins_109508", nil, "", linkd.SandboxLogin{})
		if e := WantError(t, err, linkd.EINVALID, ""); e.Field != "initial_products" {
			t.Errorf("Field = %q", e.Field)
		}
	})
	t.Run("ErrProduction", func(t *testing.T) {
		prod := MustNewClient(t, e.URL(), func(c *plaid.Config) { c.Env = linkd.PlaidProduction })
		_, _, err := prod.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
		WantError(t, err, linkd.EPRECONDITION, "")
	})
	if got := e.Calls("/sandbox/public_token/create"); got != 0 {
		t.Errorf("Calls = %d, want 0", got)
	}
}

func TestClient_WrongSecret(t *testing.T) {
	e := MustStartEmulator(t)
	const wrong = "wrong-secret-also-secret"
	c := MustNewClient(t, e.URL(), func(c *plaid.Config) { c.Secret = wrong })
	_, err := c.CreateLinkToken(context.Background(), linkTokenOptions())
	got := WantError(t, err, linkd.EPRECONDITION, "INVALID_API_KEYS", wrong)
	if got.Plaid.RequestID == "" || got.Plaid.HTTPStatus != 400 {
		t.Errorf("Plaid = %+v", got.Plaid)
	}
}

func TestClient_ServerDown(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	const token = "access-sandbox-11111111-1111-1111-1111-111111111111"
	_, err := c.GetAccounts(context.Background(), linkd.NewAccessToken(token))
	WantError(t, err, linkd.EUNAVAILABLE, "", token)
}

// PlaidServer answers every request with status and body.
func PlaidServer(tb testing.TB, status int, contentType, body string) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func plaidBody(errorType, errorCode, message string) string {
	b, _ := json.Marshal(map[string]any{
		"error_type": errorType, "error_code": errorCode, "error_message": message,
		"display_message": nil, "request_id": "REQ123456789abc",
	})
	return string(b)
}

func TestClient_PlaidErrors(t *testing.T) {
	const token = "access-sandbox-22222222-2222-2222-2222-222222222222"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		code        string
		plaidCode   string
	}{
		{"APIError", 500, "application/json", plaidBody("API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred"), linkd.EUNAVAILABLE, "INTERNAL_SERVER_ERROR"},
		{"PlannedMaintenance", 503, "application/json", plaidBody("API_ERROR", "PLANNED_MAINTENANCE", "down for maintenance"), linkd.EUNAVAILABLE, "PLANNED_MAINTENANCE"},
		{"RateLimit", 429, "application/json", plaidBody("RATE_LIMIT_EXCEEDED", "ACCOUNTS_LIMIT", "too many requests"), linkd.ERATELIMIT, "ACCOUNTS_LIMIT"},
		{"InstitutionDown", 400, "application/json", plaidBody("INSTITUTION_ERROR", "INSTITUTION_DOWN", "the institution is down"), linkd.EUNAVAILABLE, "INSTITUTION_DOWN"},
		{"ItemLoginRequired", 400, "application/json", plaidBody("ITEM_ERROR", "ITEM_LOGIN_REQUIRED", "login required"), linkd.EPRECONDITION, "ITEM_LOGIN_REQUIRED"},
		{"UnauthorizedEnvironment", 400, "application/json", plaidBody("INVALID_INPUT", "UNAUTHORIZED_ENVIRONMENT", "not enabled"), linkd.EPRECONDITION, "UNAUTHORIZED_ENVIRONMENT"},
		{"OAuthError", 400, "application/json", plaidBody("OAUTH_ERROR", "INVALID_OAUTH_STATE_ID", "bad state"), linkd.EPRECONDITION, "INVALID_OAUTH_STATE_ID"},
		{"EchoesSecrets", 400, "application/json", plaidBody("INVALID_INPUT", "INVALID_FIELD", "bad "+token+" with "+testSecret), linkd.EINVALID, "INVALID_FIELD"},
		{"HTMLBadGateway", 502, "text/html", "<html>bad gateway</html>", linkd.EUNAVAILABLE, ""},
		{"HTMLTooMany", 429, "text/html", "<html>slow down</html>", linkd.ERATELIMIT, ""},
		{"HTMLNotFound", 404, "text/html", "<html>not found</html>", linkd.EUNAVAILABLE, ""},
		{"JSONWithoutPlaidError", 403, "application/json", `{"message":"forbidden"}`, linkd.EUNAVAILABLE, ""},
		{"OKGarbage", 200, "application/json", `{"accounts":`, linkd.EUNAVAILABLE, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := PlaidServer(t, tt.status, tt.contentType, tt.body)
			_, err := MustNewClient(t, srv.URL).GetAccounts(context.Background(), linkd.NewAccessToken(token))
			e := WantError(t, err, tt.code, tt.plaidCode, token)
			if e.Plaid != nil && (e.Plaid.HTTPStatus != tt.status || e.Plaid.RequestID != "REQ123456789abc") {
				t.Errorf("Plaid = %+v", e.Plaid)
			}
		})
	}
}

func TestClient_Timeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body so the server notices when the client hangs up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	c := MustNewClient(t, srv.URL, func(c *plaid.Config) { c.Timeout = 100 * time.Millisecond })
	_, err := c.CreateLinkToken(context.Background(), linkTokenOptions())
	WantError(t, err, linkd.EUNAVAILABLE, "")
}

func TestClient_ContextCanceled(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, "", linkd.SandboxLogin{})
	WantError(t, err, linkd.EUNAVAILABLE, "")

	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err = c.ExchangePublicToken(ctx, "public-sandbox-x")
	WantError(t, err, linkd.EUNAVAILABLE, "", "public-sandbox-x")
}

func TestClient_SendsCredentialsInHeaders(t *testing.T) {
	var got http.Header
	var body bytes.Buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		body.ReadFrom(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"request_id":"r"}`))
	}))
	defer srv.Close()
	if _, err := MustNewClient(t, srv.URL+"/").RemoveItem(context.Background(), linkd.NewAccessToken("access-sandbox-x")); err != nil {
		t.Fatal(err)
	}
	if got.Get("Plaid-Client-Id") != testClientID || got.Get("Plaid-Secret") != testSecret || got.Get("Plaid-Version") == "" {
		t.Errorf("headers = %v", got)
	}
	if strings.Contains(body.String(), testSecret) {
		t.Errorf("body carries the secret: %s", body.String())
	}
}

// TestClient_UpdateMode walks the repair loop through plaid-go: reset the
// login, see ITEM_LOGIN_REQUIRED, get an update-mode token without products.
func TestClient_UpdateMode(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	item := MustCreateItem(t, c)
	token := item.AccessToken.Reveal()

	if requestID, err := c.ResetSandboxItemLogin(ctx, item.AccessToken); err != nil || requestID == "" {
		t.Fatalf("ResetSandboxItemLogin = %q, %v", requestID, err)
	}
	_, err := c.GetAccounts(ctx, item.AccessToken)
	WantError(t, err, linkd.EPRECONDITION, "ITEM_LOGIN_REQUIRED", token)

	opts := linkTokenOptions()
	opts.Products = nil
	opts.AccessToken = item.AccessToken
	start := time.Now()
	res, err := c.CreateLinkToken(ctx, opts)
	if err != nil {
		t.Fatalf("CreateLinkToken(update mode): %v", err)
	}
	if d := res.Expiration.Sub(start); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("update-mode expiration %v is not 30 minutes away", res.Expiration)
	}
	if _, err := e.CreatePublicToken(res.LinkToken, "ins_109508", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAccounts(ctx, item.AccessToken); err != nil {
		t.Errorf("GetAccounts after update mode: %v", err)
	}
	_, err = c.ResetSandboxItemLogin(ctx, linkd.AccessToken{})
	WantError(t, err, linkd.EINTERNAL, "")
}

func TestClient_WebhookVerificationKey(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	var mu sync.Mutex
	var kid string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header, _, _ := strings.Cut(r.Header.Get("Plaid-Verification"), ".")
		b, _ := base64.RawURLEncoding.DecodeString(header)
		var h struct{ Kid string }
		json.Unmarshal(b, &h)
		mu.Lock()
		kid = h.Kid // the emulator waits for this handler before answering
		mu.Unlock()
	}))
	defer receiver.Close()
	pt, _, err := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, receiver.URL, linkd.SandboxLogin{})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := c.ExchangePublicToken(ctx, pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FireSandboxWebhook(ctx, ex.AccessToken, "", "NEW_ACCOUNTS_AVAILABLE"); err != nil {
		t.Fatalf("FireSandboxWebhook: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if kid == "" {
		t.Fatal("no webhook received")
	}
	key, err := c.WebhookVerificationKey(ctx, kid)
	if err != nil {
		t.Fatalf("WebhookVerificationKey: %v", err)
	}
	if key.KeyID != kid || key.Alg != "ES256" || key.Key == nil || !key.ExpiredAt.IsZero() {
		t.Errorf("key = %+v", key)
	}
	_, err = c.WebhookVerificationKey(ctx, "no-such-key")
	if linkd.ErrorCode(err) != linkd.EINVALID {
		t.Errorf("unknown kid: %v, want EINVALID", err)
	}
}

// TestClient_GetItemAndUpdateWebhook: /item/get reports the Item's
// webhook and consent expiration (set here by the emulator's pending
// expiration); /item/webhook/update moves the webhook; bad calls are
// refused before Plaid, and errors carry no token.
func TestClient_GetItemAndUpdateWebhook(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	item := MustCreateItem(t, c)
	token := item.AccessToken.Reveal()

	st, err := c.GetItem(ctx, item.AccessToken)
	if err != nil || st.ItemID != item.ItemID || st.InstitutionID != "ins_109508" || st.Webhook != "" || !st.ConsentExpiration.IsZero() || st.ErrorCode != "" {
		t.Fatalf("GetItem = %+v, %v", st, err)
	}
	if _, err := c.UpdateItemWebhook(ctx, item.AccessToken, "https://example.com/hooks"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetItemState(token, plaidemu.StatePendingExpiration, ""); err != nil {
		t.Fatal(err)
	}
	st, err = c.GetItem(ctx, item.AccessToken)
	if err != nil || st.Webhook != "https://example.com/hooks" || st.ConsentExpiration.IsZero() {
		t.Fatalf("GetItem after the move and a pending expiration = %+v, %v", st, err)
	}

	_, err = c.UpdateItemWebhook(ctx, item.AccessToken, "")
	if WantError(t, err, linkd.EINVALID, "").Field != "webhook" {
		t.Errorf("empty webhook: %v, want INVALID naming webhook", err)
	}
	_, err = c.GetItem(ctx, linkd.AccessToken{})
	WantError(t, err, linkd.EINTERNAL, "")
	if _, err := c.RemoveItem(ctx, item.AccessToken); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetItem(ctx, item.AccessToken)
	WantError(t, err, linkd.EPRECONDITION, "ITEM_NOT_FOUND", token)
	_, err = c.UpdateItemWebhook(ctx, item.AccessToken, "https://example.com/hooks")
	WantError(t, err, linkd.EPRECONDITION, "ITEM_NOT_FOUND", token)
}

// TestClient_SandboxErrors: Plaid's SANDBOX_ERROR answers become
// FAILED_PRECONDITION naming the field they are about, and webhook_type
// reaches Plaid.
func TestClient_SandboxErrors(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	var mu sync.Mutex
	var got []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Type string `json:"webhook_type"`
			Code string `json:"webhook_code"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, body.Type+"/"+body.Code)
		mu.Unlock()
	}))
	defer receiver.Close()

	noHook := MustCreateItem(t, c) // no webhook URL
	err := WantError(t, func() error {
		_, err := c.FireSandboxWebhook(ctx, noHook.AccessToken, "", "NEW_ACCOUNTS_AVAILABLE")
		return err
	}(), linkd.EPRECONDITION, "SANDBOX_WEBHOOK_INVALID", noHook.AccessToken.Reveal())
	if err.Field != "item_id" || err.Plaid.ErrorType != "SANDBOX_ERROR" {
		t.Errorf("field %q, type %q; want item_id, SANDBOX_ERROR", err.Field, err.Plaid.ErrorType)
	}

	pt, _, perr := c.CreateSandboxPublicToken(ctx, "ins_109508", []string{"auth"}, receiver.URL, linkd.SandboxLogin{})
	if perr != nil {
		t.Fatal(perr)
	}
	item, perr := c.ExchangePublicToken(ctx, pt)
	if perr != nil {
		t.Fatal(perr)
	}
	_, perr = c.FireSandboxWebhook(ctx, item.AccessToken, "TRANSACTIONS", "DEFAULT_UPDATE")
	if err := WantError(t, perr, linkd.EPRECONDITION, "SANDBOX_PRODUCT_NOT_ENABLED"); err.Field != "item_id" {
		t.Errorf("field = %q, want item_id", err.Field)
	}
	if _, err := c.FireSandboxWebhook(ctx, item.AccessToken, "AUTH", "DEFAULT_UPDATE"); err != nil {
		t.Fatalf("FireSandboxWebhook(AUTH, DEFAULT_UPDATE): %v", err)
	}
	mu.Lock()
	if strings.Join(got, ",") != "AUTH/DEFAULT_UPDATE" {
		t.Errorf("webhooks = %v, want AUTH/DEFAULT_UPDATE", got)
	}
	mu.Unlock()

	// An account not pending verification: Plaid's INVALID_FIELD.
	accounts, aerr := c.GetAccounts(ctx, item.AccessToken)
	if aerr != nil {
		t.Fatal(aerr)
	}
	accountID := accounts.Accounts[0].GetId()
	_, perr = c.SetSandboxVerificationStatus(ctx, item.AccessToken, accountID, "automatically_verified")
	WantError(t, perr, linkd.EINVALID, "INVALID_FIELD")
	_, perr = c.SetSandboxVerificationStatus(ctx, linkd.AccessToken{}, accountID, "automatically_verified")
	WantError(t, perr, linkd.EINTERNAL, "")
}
