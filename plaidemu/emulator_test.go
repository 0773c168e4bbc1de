package plaidemu_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd/plaidemu"
)

const (
	testClientID = "test-client-id"
	testSecret   = "test-secret-do-not-leak"
)

var (
	linkTokenRE   = regexp.MustCompile(`^link-sandbox-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	publicTokenRE = regexp.MustCompile(`^public-sandbox-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	accessTokenRE = regexp.MustCompile(`^access-sandbox-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	plaidIDRE     = regexp.MustCompile(`^[0-9A-Za-z]{37}$`)
	requestIDRE   = regexp.MustCompile(`^[0-9A-Za-z]{15}$`)
)

// Clock is a settable clock for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// MustStartEmulator starts an emulator on loopback with the test
// credentials and the given clock, and closes it at cleanup.
func MustStartEmulator(tb testing.TB, clock *Clock) *plaidemu.Emulator {
	tb.Helper()
	e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret, Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// Response is a decoded JSON answer.
type Response struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (r Response) Str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// Post sends body as JSON to path with the test credentials in Plaid's
// headers.
func Post(tb testing.TB, e *plaidemu.Emulator, path string, body any) Response {
	tb.Helper()
	h := http.Header{"Plaid-Client-Id": {testClientID}, "Plaid-Secret": {testSecret}}
	return Do(tb, http.MethodPost, e.URL()+path, "application/json", body, h)
}

// Do sends one raw request and decodes the JSON answer.
func Do(tb testing.TB, method, url, contentType string, body any, header http.Header) Response {
	tb.Helper()
	var buf []byte
	switch b := body.(type) {
	case nil:
	case string:
		buf = []byte(b)
	default:
		var err error
		if buf, err = json.Marshal(b); err != nil {
			tb.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(buf))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type = %q, want application/json", ct)
	}
	r := Response{Status: resp.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		tb.Fatalf("body %q: %v", raw, err)
	}
	if !requestIDRE.MatchString(r.Str("request_id")) {
		tb.Errorf("request_id = %q, want 15 base62 characters", r.Str("request_id"))
	}
	return r
}

// WantOK fails unless r is a 200.
func WantOK(tb testing.TB, r Response) {
	tb.Helper()
	if r.Status != http.StatusOK {
		tb.Fatalf("status %d, body %s", r.Status, r.Raw)
	}
}

// WantError fails unless r is Plaid's error body with the given status,
// type and code; it returns error_message.
func WantError(tb testing.TB, r Response, status int, errorType, errorCode string) string {
	tb.Helper()
	if r.Status != status || r.Str("error_type") != errorType || r.Str("error_code") != errorCode {
		tb.Fatalf("got %d %s/%s, want %d %s/%s; body %s", r.Status, r.Str("error_type"), r.Str("error_code"), status, errorType, errorCode, r.Raw)
	}
	for _, key := range []string{"error_message", "display_message", "request_id", "documentation_url"} {
		if _, ok := r.Body[key]; !ok {
			tb.Errorf("error body has no %s: %s", key, r.Raw)
		}
	}
	return r.Str("error_message")
}

func linkTokenBody() map[string]any {
	return map[string]any{
		"client_name":   "linkd test",
		"language":      "en",
		"country_codes": []string{"US"},
		"user":          map[string]any{"client_user_id": "user-1"},
		"products":      []string{"auth", "transactions"},
	}
}

// MustCreateItem makes an Item at institutionID through the sandbox and
// returns its access token and item_id.
func MustCreateItem(tb testing.TB, e *plaidemu.Emulator, institutionID string) (accessToken, itemID string) {
	tb.Helper()
	r := Post(tb, e, "/sandbox/public_token/create", map[string]any{"institution_id": institutionID, "initial_products": []string{"auth"}})
	WantOK(tb, r)
	r = Post(tb, e, "/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")})
	WantOK(tb, r)
	return r.Str("access_token"), r.Str("item_id")
}

func TestStart(t *testing.T) {
	t.Run("ErrNoCredentials", func(t *testing.T) {
		if _, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "id"}); err == nil {
			t.Fatal("Start without a secret succeeded")
		}
	})
	t.Run("ErrListen", func(t *testing.T) {
		if _, err := plaidemu.Start("256.0.0.1:0", plaidemu.Options{ClientID: "id", Secret: "s"}); err == nil {
			t.Fatal("Start on a bad address succeeded")
		}
	})
	t.Run("Close", func(t *testing.T) {
		e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "id", Secret: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := http.Post(e.URL()+"/item/get", "application/json", strings.NewReader("{}")); err == nil {
			t.Fatal("request after Close succeeded")
		}
	})
}

func TestEmulator_Credentials(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	url := e.URL() + "/sandbox/public_token/create"
	body := map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}}
	withBody := func(id, secret any) map[string]any {
		b := map[string]any{"client_id": id, "secret": secret}
		for k, v := range body {
			b[k] = v
		}
		return b
	}
	headers := func(id, secret string) http.Header {
		return http.Header{"Plaid-Client-Id": {id}, "Plaid-Secret": {secret}}
	}
	tests := []struct {
		name   string
		body   any
		header http.Header
		ok     bool
	}{
		{"OKHeaders", body, headers(testClientID, testSecret), true},
		{"OKBody", withBody(testClientID, testSecret), nil, true},
		{"OKBodyOverHeaders", withBody(testClientID, testSecret), headers("other", "other"), true},
		{"ErrWrongSecretHeader", body, headers(testClientID, "wrong"), false},
		{"ErrWrongSecretBody", withBody(testClientID, "wrong"), nil, false},
		{"ErrWrongClientID", body, headers("wrong", testSecret), false},
		{"ErrMissing", body, nil, false},
		{"ErrMissingSecret", body, http.Header{"Plaid-Client-Id": {testClientID}}, false},
		{"ErrSecretNotString", withBody(testClientID, 42), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Do(t, http.MethodPost, url, "application/json", tt.body, tt.header)
			if tt.ok {
				WantOK(t, r)
				return
			}
			WantError(t, r, http.StatusBadRequest, "INVALID_INPUT", "INVALID_API_KEYS")
			if strings.Contains(r.Raw, testSecret) {
				t.Errorf("error body contains the secret: %s", r.Raw)
			}
		})
	}
	if got := e.Calls("/sandbox/public_token/create"); got != 3 {
		t.Errorf("Calls = %d, want 3 (successes only)", got)
	}
}

func TestEmulator_Routing(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	creds := http.Header{"Plaid-Client-Id": {testClientID}, "Plaid-Secret": {testSecret}}
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        any
		status      int
		errorType   string
		errorCode   string
	}{
		{"ErrUnknownPath", http.MethodPost, "/transactions/sync", "application/json", "{}", 404, "INVALID_REQUEST", "NOT_FOUND"},
		{"ErrGet", http.MethodGet, "/item/get", "", nil, 404, "INVALID_REQUEST", "NOT_FOUND"},
		{"ErrContentType", http.MethodPost, "/item/get", "text/plain", `{"access_token":"x"}`, 400, "INVALID_REQUEST", "INVALID_HEADERS"},
		{"ErrNotJSON", http.MethodPost, "/item/get", "application/json", `{"access_token":`, 400, "INVALID_REQUEST", "INVALID_BODY"},
		{"ErrArray", http.MethodPost, "/item/get", "application/json", `[]`, 400, "INVALID_REQUEST", "INVALID_BODY"},
		{"ErrNull", http.MethodPost, "/item/get", "application/json", `null`, 400, "INVALID_REQUEST", "INVALID_BODY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Do(t, tt.method, e.URL()+tt.path, tt.contentType, tt.body, creds)
			WantError(t, r, tt.status, tt.errorType, tt.errorCode)
		})
	}
}

func TestEmulator_LinkTokenCreate(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)

	t.Run("OK", func(t *testing.T) {
		body := linkTokenBody()
		body["redirect_uri"] = "https://app.example.com/plaid"
		body["android_package_name"] = "com.example.app"
		body["webhook"] = "https://hooks.example.com/plaid"
		r := Post(t, e, "/link/token/create", body)
		WantOK(t, r)
		if !linkTokenRE.MatchString(r.Str("link_token")) {
			t.Errorf("link_token = %q", r.Str("link_token"))
		}
		if want := clock.Now().Add(4 * time.Hour).Format(time.RFC3339); r.Str("expiration") != want {
			t.Errorf("expiration = %q, want %q", r.Str("expiration"), want)
		}
	})

	t.Run("OKUpdateMode", func(t *testing.T) {
		accessToken, _ := MustCreateItem(t, e, "ins_109508")
		body := linkTokenBody()
		delete(body, "products")
		body["access_token"] = accessToken
		r := Post(t, e, "/link/token/create", body)
		WantOK(t, r)
		if want := clock.Now().Add(30 * time.Minute).Format(time.RFC3339); r.Str("expiration") != want {
			t.Errorf("expiration = %q, want %q", r.Str("expiration"), want)
		}
	})

	t.Run("ErrUpdateModeUnknownAccessToken", func(t *testing.T) {
		body := linkTokenBody()
		body["access_token"] = "access-sandbox-00000000-0000-0000-0000-000000000000"
		r := Post(t, e, "/link/token/create", body)
		WantError(t, r, 400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN")
		if strings.Contains(r.Raw, "access-sandbox-0000") {
			t.Errorf("error body echoes the access token: %s", r.Raw)
		}
	})

	t.Run("ErrMissingFields", func(t *testing.T) {
		msg := WantError(t, Post(t, e, "/link/token/create", map[string]any{}), 400, "INVALID_REQUEST", "MISSING_FIELDS")
		for _, field := range []string{"client_name", "language", "country_codes", "user.client_user_id", "products"} {
			if !strings.Contains(msg, field) {
				t.Errorf("error_message %q does not name %s", msg, field)
			}
		}
	})

	// Each case changes one field of a valid body; nil deletes it.
	tests := []struct {
		name      string
		field     string
		value     any
		errorCode string
		inMessage string
	}{
		{"ErrNoClientName", "client_name", nil, "MISSING_FIELDS", "client_name"},
		{"ErrEmptyClientName", "client_name", "", "MISSING_FIELDS", "client_name"},
		{"ErrNullLanguage", "language", nil, "MISSING_FIELDS", "language"},
		{"ErrNoUser", "user", nil, "MISSING_FIELDS", "user.client_user_id"},
		{"ErrNoClientUserID", "user", map[string]any{}, "MISSING_FIELDS", "user.client_user_id"},
		{"ErrNoProducts", "products", nil, "MISSING_FIELDS", "products"},
		{"ErrClientNameType", "client_name", 5, "INVALID_FIELD", "client_name"},
		{"ErrUserType", "user", "user-1", "INVALID_FIELD", "user"},
		{"ErrCountryCodesType", "country_codes", "US", "INVALID_FIELD", "country_codes"},
		{"ErrCountryCodesEmpty", "country_codes", []string{}, "INVALID_FIELD", "country_codes"},
		{"ErrCountryCode", "country_codes", []string{"US", "XX"}, "INVALID_FIELD", "country_codes"},
		{"ErrLanguage", "language", "klingon", "INVALID_FIELD", "language"},
		{"ErrProduct", "products", []string{"auth", "telepathy"}, "INVALID_FIELD", "products"},
		// Plaid's spec: balance is not a valid value, Balance needs no initialization.
		{"ErrProductBalance", "products", []string{"auth", "balance"}, "INVALID_FIELD", "products must not contain balance"},
		{"ErrRedirectURI", "redirect_uri", "not a url", "INVALID_FIELD", "redirect_uri"},
		{"ErrWebhookType", "webhook", true, "INVALID_FIELD", "webhook"},
		// The messages in full, for nested fields read through one
		// decoding of their object.
		{"ErrClientNameTypeMessage", "client_name", 5, "INVALID_FIELD", "client_name must be a string"},
		{"ErrUserTypeMessage", "user", []string{"u"}, "INVALID_FIELD", "user must be an object"},
		{"ErrUserFieldType", "user", map[string]any{"client_user_id": 7}, "INVALID_FIELD", "user.client_user_id must be a string"},
		{"ErrUserPhoneType", "user", map[string]any{"client_user_id": "u", "phone_number": false}, "INVALID_FIELD", "user.phone_number must be a string"},
		{"ErrUserAddressType", "user", map[string]any{"client_user_id": "u", "address": "x"}, "INVALID_FIELD", "user.address must be an object"},
		{"ErrUserAddressCountry", "user", map[string]any{"client_user_id": "u", "address": map[string]any{"city": "x"}}, "MISSING_FIELDS", "user.address.country"},
		{"ErrHostedLinkType", "hosted_link", "yes", "INVALID_FIELD", "hosted_link must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := linkTokenBody()
			if tt.value == nil {
				delete(body, tt.field)
			} else {
				body[tt.field] = tt.value
			}
			msg := WantError(t, Post(t, e, "/link/token/create", body), 400, "INVALID_REQUEST", tt.errorCode)
			if !strings.Contains(msg, tt.inMessage) {
				t.Errorf("error_message %q does not name %s", msg, tt.inMessage)
			}
		})
	}
}

func TestEmulator_PublicTokenExchange(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)
	newPublicToken := func(t *testing.T) string {
		t.Helper()
		r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109511", "initial_products": []string{"transactions"}})
		WantOK(t, r)
		if !publicTokenRE.MatchString(r.Str("public_token")) {
			t.Fatalf("public_token = %q", r.Str("public_token"))
		}
		return r.Str("public_token")
	}
	exchange := func(t *testing.T, token any) Response {
		t.Helper()
		return Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": token})
	}

	t.Run("OK", func(t *testing.T) {
		r := exchange(t, newPublicToken(t))
		WantOK(t, r)
		if !accessTokenRE.MatchString(r.Str("access_token")) {
			t.Errorf("access_token = %q", r.Str("access_token"))
		}
		if !plaidIDRE.MatchString(r.Str("item_id")) {
			t.Errorf("item_id = %q", r.Str("item_id"))
		}
	})
	t.Run("ErrReused", func(t *testing.T) {
		token := newPublicToken(t)
		WantOK(t, exchange(t, token))
		r := exchange(t, token)
		WantError(t, r, 400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN")
		if strings.Contains(r.Raw, token) {
			t.Errorf("error body echoes the public token: %s", r.Raw)
		}
	})
	t.Run("OKJustBeforeExpiry", func(t *testing.T) {
		token := newPublicToken(t)
		clock.Add(30*time.Minute - time.Second)
		WantOK(t, exchange(t, token))
	})
	t.Run("ErrExpired", func(t *testing.T) {
		token := newPublicToken(t)
		clock.Add(30 * time.Minute)
		WantError(t, exchange(t, token), 400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN")
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		WantError(t, exchange(t, "public-sandbox-00000000-0000-0000-0000-000000000000"), 400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN")
	})
	t.Run("ErrFormat", func(t *testing.T) {
		WantError(t, exchange(t, "link-sandbox-1"), 400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN")
	})
	t.Run("ErrMissing", func(t *testing.T) {
		msg := WantError(t, exchange(t, nil), 400, "INVALID_REQUEST", "MISSING_FIELDS")
		if !strings.Contains(msg, "public_token") {
			t.Errorf("error_message %q does not name public_token", msg)
		}
	})
	t.Run("ErrType", func(t *testing.T) {
		WantError(t, exchange(t, 12), 400, "INVALID_REQUEST", "INVALID_FIELD")
	})
}

func TestEmulator_PublicTokenExchange_Concurrent(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}})
	WantOK(t, r)
	token := r.Str("public_token")

	const n = 16
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			statuses <- Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": token}).Status
		})
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for s := range statuses {
		if s == http.StatusOK {
			ok++
		}
	}
	if ok != 1 || e.Calls("/item/public_token/exchange") != 1 {
		t.Fatalf("%d exchanges succeeded (Calls %d), want 1", ok, e.Calls("/item/public_token/exchange"))
	}
}

func TestEmulator_SandboxPublicTokenCreate(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	tests := []struct {
		name      string
		body      map[string]any
		errorType string
		errorCode string
	}{
		{"ErrUnknownInstitution", map[string]any{"institution_id": "ins_1", "initial_products": []string{"auth"}}, "INVALID_INPUT", "INVALID_INSTITUTION"},
		{"ErrNoInstitution", map[string]any{"initial_products": []string{"auth"}}, "INVALID_REQUEST", "MISSING_FIELDS"},
		{"ErrNoProducts", map[string]any{"institution_id": "ins_109508"}, "INVALID_REQUEST", "MISSING_FIELDS"},
		{"ErrEmptyProducts", map[string]any{"institution_id": "ins_109508", "initial_products": []string{}}, "INVALID_REQUEST", "INVALID_FIELD"},
		{"ErrProduct", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"nope"}}, "INVALID_REQUEST", "INVALID_FIELD"},
		{"ErrOptionsType", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}, "options": 1}, "INVALID_REQUEST", "INVALID_FIELD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			WantError(t, Post(t, e, "/sandbox/public_token/create", tt.body), 400, tt.errorType, tt.errorCode)
		})
	}
	t.Run("OKOAuthInstitution", func(t *testing.T) {
		accessToken, _ := MustCreateItem(t, e, "ins_127287")
		r := Post(t, e, "/item/get", map[string]any{"access_token": accessToken})
		WantOK(t, r)
		item := r.Body["item"].(map[string]any)
		if item["institution_name"] != "Platypus OAuth Bank" {
			t.Errorf("institution_name = %v", item["institution_name"])
		}
	})
}

func TestEmulator_Items(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	accessToken, itemID := MustCreateItem(t, e, "ins_109508")

	t.Run("ItemGet", func(t *testing.T) {
		r := Post(t, e, "/item/get", map[string]any{"access_token": accessToken})
		WantOK(t, r)
		item := r.Body["item"].(map[string]any)
		if item["item_id"] != itemID || item["institution_id"] != "ins_109508" || item["institution_name"] != "First Platypus Bank" {
			t.Errorf("item = %v", item)
		}
	})

	t.Run("AccountsGet", func(t *testing.T) {
		r := Post(t, e, "/accounts/get", map[string]any{"access_token": accessToken})
		WantOK(t, r)
		if item := r.Body["item"].(map[string]any); item["item_id"] != itemID || item["institution_id"] != "ins_109508" {
			t.Errorf("item = %v", item)
		}
		accounts := r.Body["accounts"].([]any)
		byMask := map[string]map[string]any{}
		for _, a := range accounts {
			a := a.(map[string]any)
			if !plaidIDRE.MatchString(a["account_id"].(string)) {
				t.Errorf("account_id = %v", a["account_id"])
			}
			byMask[a["mask"].(string)] = a
		}
		want := []struct{ mask, name, typ, subtype string }{
			{"0000", "Plaid Checking", "depository", "checking"},
			{"1111", "Plaid Saving", "depository", "savings"},
			{"2222", "Plaid CD", "depository", "cd"},
			{"3333", "Plaid Credit Card", "credit", "credit card"},
		}
		for _, w := range want {
			a := byMask[w.mask]
			if a == nil || a["name"] != w.name || a["type"] != w.typ || a["subtype"] != w.subtype {
				t.Errorf("account %s = %v, want %+v", w.mask, a, w)
			}
		}
		checking := byMask["0000"]["balances"].(map[string]any)
		if checking["available"] != 100.0 || checking["current"] != 110.0 || checking["iso_currency_code"] != "USD" {
			t.Errorf("checking balances = %v", checking)
		}
		credit := byMask["3333"]["balances"].(map[string]any)
		if v, ok := credit["available"]; !ok || v != nil || credit["limit"] != 2000.0 {
			t.Errorf("credit balances = %v, want available null and limit 2000", credit)
		}
	})

	t.Run("AccountsGetFiltered", func(t *testing.T) {
		id := plaidemu.Institutions()[0].Accounts[1].ID
		r := Post(t, e, "/accounts/get", map[string]any{"access_token": accessToken, "options": map[string]any{"account_ids": []string{id}}})
		WantOK(t, r)
		if accounts := r.Body["accounts"].([]any); len(accounts) != 1 || accounts[0].(map[string]any)["account_id"] != id {
			t.Errorf("accounts = %v, want only %s", accounts, id)
		}
		r = Post(t, e, "/accounts/get", map[string]any{"access_token": accessToken, "options": map[string]any{"account_ids": []string{"nope"}}})
		WantError(t, r, 400, "INVALID_INPUT", "INVALID_ACCOUNT_ID")
	})

	for _, path := range []string{"/item/get", "/accounts/get", "/item/remove"} {
		t.Run("ErrUnknownAccessToken"+path, func(t *testing.T) {
			r := Post(t, e, path, map[string]any{"access_token": "access-sandbox-unknown"})
			WantError(t, r, 400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN")
		})
		t.Run("ErrNoAccessToken"+path, func(t *testing.T) {
			WantError(t, Post(t, e, path, map[string]any{}), 400, "INVALID_REQUEST", "MISSING_FIELDS")
		})
	}

	t.Run("ItemRemove", func(t *testing.T) {
		WantOK(t, Post(t, e, "/item/remove", map[string]any{"access_token": accessToken}))
		for _, path := range []string{"/item/get", "/accounts/get", "/item/remove"} {
			r := Post(t, e, path, map[string]any{"access_token": accessToken})
			WantError(t, r, 400, "ITEM_ERROR", "ITEM_NOT_FOUND")
			if strings.Contains(r.Raw, accessToken) {
				t.Errorf("error body echoes the access token: %s", r.Raw)
			}
		}
	})

	if got := e.Calls("/item/remove"); got != 1 {
		t.Errorf("Calls(/item/remove) = %d, want 1", got)
	}
}

// MustCreateLinkToken posts body to /link/token/create and returns the token.
func MustCreateLinkToken(tb testing.TB, e *plaidemu.Emulator, body map[string]any) string {
	tb.Helper()
	r := Post(tb, e, "/link/token/create", body)
	WantOK(tb, r)
	return r.Str("link_token")
}

// WantErrorCode fails unless err is a *plaidemu.Error with that error_code.
func WantErrorCode(tb testing.TB, err error, code string) {
	tb.Helper()
	var perr *plaidemu.Error
	if !errors.As(err, &perr) || perr.Code != code {
		tb.Fatalf("err = %v, want %s", err, code)
	}
}

func TestEmulator_CreatePublicToken(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)
	newLinkToken := func(t *testing.T, body map[string]any) string { return MustCreateLinkToken(t, e, body) }
	ins := plaidemu.Institutions()[1]

	t.Run("OK", func(t *testing.T) {
		selected := []string{ins.Accounts[0].ID, ins.Accounts[3].ID}
		publicToken, err := e.CreatePublicToken(newLinkToken(t, linkTokenBody()), ins.ID, selected)
		if err != nil {
			t.Fatal(err)
		}
		r := Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": publicToken})
		WantOK(t, r)
		r = Post(t, e, "/accounts/get", map[string]any{"access_token": r.Str("access_token")})
		WantOK(t, r)
		var got []string
		for _, a := range r.Body["accounts"].([]any) {
			got = append(got, a.(map[string]any)["account_id"].(string))
		}
		if !slices.Equal(got, selected) {
			t.Errorf("accounts = %v, want %v", got, selected)
		}
		if products := r.Body["item"].(map[string]any)["products"].([]any); len(products) != 2 || products[0] != "auth" {
			t.Errorf("products = %v, want the link token's", products)
		}
	})
	t.Run("OKUpdateMode", func(t *testing.T) {
		accessToken, itemID := MustCreateItem(t, e, ins.ID)
		body := linkTokenBody()
		delete(body, "products")
		body["access_token"] = accessToken
		publicToken, err := e.CreatePublicToken(newLinkToken(t, body), ins.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": publicToken})
		WantOK(t, r)
		if r.Str("access_token") != accessToken || r.Str("item_id") != itemID {
			t.Errorf("update-mode exchange gave another Item")
		}
		_, err = e.CreatePublicToken(newLinkToken(t, body), "ins_109508", nil)
		WantErrorCode(t, err, "INVALID_INSTITUTION")
	})
	t.Run("ErrUnknownLinkToken", func(t *testing.T) {
		_, err := e.CreatePublicToken("link-sandbox-nope", ins.ID, nil)
		WantErrorCode(t, err, "INVALID_LINK_TOKEN")
	})
	t.Run("ErrExpiredLinkToken", func(t *testing.T) {
		linkToken := newLinkToken(t, linkTokenBody())
		clock.Add(4 * time.Hour)
		_, err := e.CreatePublicToken(linkToken, ins.ID, nil)
		WantErrorCode(t, err, "INVALID_LINK_TOKEN")
	})
	t.Run("ErrInstitution", func(t *testing.T) {
		_, err := e.CreatePublicToken(newLinkToken(t, linkTokenBody()), "ins_0", nil)
		WantErrorCode(t, err, "INVALID_INSTITUTION")
	})
	t.Run("ErrAccountID", func(t *testing.T) {
		other := plaidemu.Institutions()[0].Accounts[0].ID
		_, err := e.CreatePublicToken(newLinkToken(t, linkTokenBody()), ins.ID, []string{other})
		WantErrorCode(t, err, "INVALID_ACCOUNT_ID")
	})
}

func TestEmulator_FailNext(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	e.FailNext("/link/token/create", plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR", Message: "boom"})
	e.FailNext("/link/token/create", plaidemu.Error{Type: plaidemu.TypeRateLimit, Code: "RATE_LIMIT", Message: "slow down"})
	WantError(t, Post(t, e, "/link/token/create", linkTokenBody()), 500, "API_ERROR", "INTERNAL_SERVER_ERROR")
	WantError(t, Post(t, e, "/link/token/create", linkTokenBody()), 429, "RATE_LIMIT_EXCEEDED", "RATE_LIMIT")
	WantOK(t, Post(t, e, "/link/token/create", linkTokenBody()))
	if got := e.Calls("/link/token/create"); got != 1 {
		t.Errorf("Calls = %d, want 1", got)
	}
}

func TestInstitutions(t *testing.T) {
	all := plaidemu.Institutions()
	want := map[string]struct {
		name         string
		oauth, popup bool
	}{
		"ins_109508": {"First Platypus Bank", false, false},
		"ins_109511": {"Tartan Bank", false, false},
		"ins_109512": {"Houndstooth Bank", false, false},
		"ins_127287": {"Platypus OAuth Bank", true, false},
		"ins_56":     {"Chase", true, true},
	}
	if len(all) != len(want) {
		t.Fatalf("%d institutions, want %d", len(all), len(want))
	}
	seen := map[string]bool{}
	for _, ins := range all {
		w, ok := want[ins.ID]
		if !ok || ins.Name != w.name || ins.OAuth != w.oauth || ins.OAuthPopup != w.popup {
			t.Errorf("institution %+v unexpected", ins)
		}
		if len(ins.Accounts) < 4 {
			t.Errorf("%s has %d accounts", ins.ID, len(ins.Accounts))
		}
		for _, a := range ins.Accounts {
			if !plaidIDRE.MatchString(a.ID) || seen[a.ID] {
				t.Errorf("account id %q malformed or repeated", a.ID)
			}
			seen[a.ID] = true
		}
	}
	all[0].Name = "changed"
	all[0].Accounts[0].ID = "changed"
	again := plaidemu.Institutions()
	if again[0].Name != "First Platypus Bank" || again[0].Accounts[0].ID == "changed" {
		t.Error("Institutions returned shared data")
	}
}

func TestNew_Mount(t *testing.T) {
	// New without credentials rejects everything; mounted on a mux it serves
	// under its paths.
	e := plaidemu.New(plaidemu.Options{})
	mux := http.NewServeMux()
	mux.Handle("/", e)
	req, _ := http.NewRequest(http.MethodPost, "/item/get", strings.NewReader(`{"access_token":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}}
	mux.ServeHTTP(rec, req)
	if rec.status != 400 || !strings.Contains(rec.body.String(), "INVALID_API_KEYS") {
		t.Fatalf("got %d %s", rec.status, rec.body.String())
	}
	if e.URL() != "" || e.Close() != nil {
		t.Error("URL or Close of an unstarted emulator")
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func TestEmulator_RequestLog(t *testing.T) {
	// A success logs at Debug (linkd's access log covers it), a Plaid
	// error at Info, a 5xx at Warn; each line names the path and code.
	for _, tc := range []struct {
		name      string
		path      string
		body      string
		fail      *plaidemu.Error
		wantLevel string // "" for no line at Info
		wantCode  string
	}{
		{name: "OK", path: "/sandbox/public_token/create", body: `{"institution_id":"ins_109508","initial_products":["auth"]}`},
		{name: "PlaidError", path: "/item/get", body: `{"access_token":"access-sandbox-nope"}`, wantLevel: "INFO", wantCode: "INVALID_ACCESS_TOKEN"},
		{name: "MissingFields", path: "/item/public_token/exchange", body: `{}`, wantLevel: "INFO", wantCode: "MISSING_FIELDS"},
		{name: "ServerError", path: "/item/get", body: `{"access_token":"x"}`, fail: &plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR", Message: "down"}, wantLevel: "WARN", wantCode: "INTERNAL_SERVER_ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
				var buf bytes.Buffer
				e := plaidemu.New(plaidemu.Options{ClientID: testClientID, Secret: testSecret,
					Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))})
				if tc.fail != nil {
					e.FailNext(tc.path, *tc.fail)
				}
				req, _ := http.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Plaid-Client-Id", testClientID)
				req.Header.Set("Plaid-Secret", testSecret)
				rec := &recorder{header: http.Header{}}
				e.ServeHTTP(rec, req) // logs before it returns
				want := tc.wantLevel
				if want == "" && level == slog.LevelDebug {
					want = "DEBUG"
				}
				line := buf.String()
				switch {
				case want == "" && strings.Contains(line, "plaidemu: request"):
					t.Errorf("at %v, logged a success: %s", level, line)
				case want != "" && (!strings.Contains(line, "level="+want+` msg="plaidemu: request"`) || !strings.Contains(line, "path="+tc.path)):
					t.Errorf("at %v, logged %q; want a %s line for %s", level, line, want, tc.path)
				case tc.wantCode != "" && !strings.Contains(line, "error_code="+tc.wantCode):
					t.Errorf("at %v, logged %q; want error_code=%s", level, line, tc.wantCode)
				}
			}
		})
	}
}
