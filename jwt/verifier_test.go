package jwt_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/jwt"
	"github.com/linkd/linkd/jwt/jwttest"
)

const (
	issuer   = "https://issuer.example"
	audience = "linkd"
)

var (
	now    = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	secret = []byte("0123456789abcdef0123456789abcdef")
)

// claimsFor returns valid claims for sub, changed by the given edits.
func claimsFor(sub string, edits ...func(map[string]any)) map[string]any {
	c := map[string]any{"iss": issuer, "aud": audience, "sub": sub, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	for _, e := range edits {
		e(c)
	}
	return c
}

func set(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
func del(k string) func(map[string]any)        { return func(c map[string]any) { delete(c, k) } }

// mustJWKSFile writes a JWKS of keys to a temporary file and returns its path.
func mustJWKSFile(tb testing.TB, keys ...jwttest.Key) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwttest.JWKS(keys...), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func mustVerifier(tb testing.TB, cfg jwt.Config) *jwt.Verifier {
	tb.Helper()
	cfg.Issuer, cfg.Audience, cfg.Now = issuer, audience, func() time.Time { return now }
	v, err := jwt.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestVerifier_VerifyUserToken(t *testing.T) {
	rsaKey := jwttest.MustRSAKey(t, "rsa-1")
	ecKey := jwttest.MustECKey(t, "ec-1")
	otherRSA := jwttest.MustRSAKey(t, "rsa-1") // same kid, not published
	hmacKey := jwttest.HMACKey(secret)
	v := mustVerifier(t, jwt.Config{JWKS: mustJWKSFile(t, rsaKey, ecKey), HS256Secret: secret})

	// The RSA public key's bytes, as an attacker would use them as an HMAC
	// secret hoping the verifier takes alg from the token.
	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.Signer.Public().(*rsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	confused := jwttest.HMACKey(pubDER)
	confused.Kid = "rsa-1"

	valid := jwttest.Sign(t, rsaKey, claimsFor("user-1"))
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token string
		want  string // "" for accepted; else a part of the rejection message
	}{
		{"RS256", valid, ""},
		{"ES256", jwttest.Sign(t, ecKey, claimsFor("user-1")), ""},
		{"HS256", jwttest.Sign(t, hmacKey, claimsFor("user-1")), ""},
		{"audience array", jwttest.Sign(t, ecKey, claimsFor("user-1", set("aud", []string{"other", audience}))), ""},
		{"expired within leeway", jwttest.Sign(t, ecKey, claimsFor("user-1", set("exp", now.Add(-10*time.Second).Unix()))), ""},
		{"nbf within leeway", jwttest.Sign(t, ecKey, claimsFor("user-1", set("nbf", now.Add(10*time.Second).Unix()))), ""},

		{"bad signature", jwttest.Sign(t, otherRSA, claimsFor("user-1")), "bad signature"},
		{"tampered claims", parts[0] + "." + strings.Split(jwttest.Sign(t, rsaKey, claimsFor("admin")), ".")[1] + "." + parts[2], "bad signature"},
		{"bad HS256 secret", jwttest.Sign(t, jwttest.HMACKey([]byte("another secret of thirty-two bytes!!")), claimsFor("user-1")), "bad signature"},
		{"alg none", b64json(`{"alg":"none","kid":"rsa-1"}`) + "." + parts[1] + ".", `alg "none"`},
		{"alg confusion: HS256 with the RSA key's bytes", jwttest.Sign(t, confused, claimsFor("user-1")), "bad signature"},
		{"alg ES256 naming the RSA key", jwttest.SignWithHeader(t, ecKey, map[string]any{"alg": "ES256", "kid": "rsa-1"}, claimsFor("user-1")), "does not match"},
		{"alg RS512", jwttest.SignWithHeader(t, rsaKey, map[string]any{"alg": "RS512", "kid": "rsa-1"}, claimsFor("user-1")), `alg "RS512"`},
		{"unknown kid", jwttest.Sign(t, jwttest.MustECKey(t, "ec-2"), claimsFor("user-1")), "unknown key id"},
		{"no kid with several keys", jwttest.SignWithHeader(t, rsaKey, map[string]any{"alg": "RS256"}, claimsFor("user-1")), "no kid"},
		{"wrong issuer", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("iss", "https://evil.example"))), "wrong issuer"},
		{"wrong audience", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("aud", "someone-else"))), "wrong audience"},
		{"no audience", jwttest.Sign(t, rsaKey, claimsFor("user-1", del("aud"))), "wrong audience"},
		{"expired", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("exp", now.Add(-time.Minute).Unix()))), "expired"},
		{"no exp", jwttest.Sign(t, rsaKey, claimsFor("user-1", del("exp"))), "no exp"},
		{"exp not a number", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("exp", "tomorrow"))), "malformed claims"},
		// RFC 7519: a NumericDate is a JSON number, not one in a string.
		{"exp a number in a string", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("exp", fmt.Sprint(now.Add(time.Hour).Unix())))), "malformed claims"},
		{"nbf a number in a string", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("nbf", fmt.Sprint(now.Unix())))), "malformed claims"},
		{"not yet valid", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("nbf", now.Add(time.Minute).Unix()))), "not valid yet"},
		{"no sub", jwttest.Sign(t, rsaKey, claimsFor("")), "sub must be"},
		{"sub with a slash", jwttest.Sign(t, rsaKey, claimsFor("a/b")), "not allowed"},
		// encoding/json would read "SUB" as sub, last one winning.
		{"sub again in another case", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("SUB", "admin"))), "malformed claims"},
		{"iss again in another case", jwttest.Sign(t, rsaKey, claimsFor("user-1", set("Iss", "https://evil.example"))), "malformed claims"},
		{"critical header", jwttest.SignWithHeader(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"b64"}}, claimsFor("user-1")), "critical"},
		// RFC 7515 forbids an empty crit; linkd refuses the member outright.
		{"critical header, empty", jwttest.SignWithHeader(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{}}, claimsFor("user-1")), "critical"},
		{"critical header, null", jwttest.SignWithHeader(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": nil}, claimsFor("user-1")), "critical"},
		{"malformed: two parts", parts[0] + "." + parts[1], "malformed"},
		{"malformed: header not base64", "!!!." + parts[1] + "." + parts[2], "malformed header"},
		{"malformed: header not JSON", b64json("alg") + "." + parts[1] + "." + parts[2], "malformed header"},
		{"malformed: padded signature", valid + "=", "malformed signature"},
		{"malformed: empty", "", "malformed"},
		{"too long", strings.Repeat("a", jwt.MaxTokenBytes+1), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := v.VerifyUserToken(context.Background(), tt.token)
			if tt.want == "" {
				if err != nil || sub != "user-1" {
					t.Fatalf("VerifyUserToken = %q, %v; want user-1", sub, err)
				}
				return
			}
			if linkd.ErrorCode(err) != linkd.EUNAUTHORIZED || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifyUserToken = %q, %v; want EUNAUTHORIZED with %q", sub, err, tt.want)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Error("the error contains the token")
			}
		})
	}
}

func b64json(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestVerifier_OnlyConfiguredAlgorithms: with only a secret, RS256 is
// refused; with only a JWKS, HS256 is refused.
func TestVerifier_OnlyConfiguredAlgorithms(t *testing.T) {
	rsaKey := jwttest.MustRSAKey(t, "rsa-1")
	onlySecret := mustVerifier(t, jwt.Config{HS256Secret: secret})
	if _, err := onlySecret.VerifyUserToken(context.Background(), jwttest.Sign(t, rsaKey, claimsFor("u"))); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("RS256 without a JWKS: %v", err)
	}
	onlyJWKS := mustVerifier(t, jwt.Config{JWKS: mustJWKSFile(t, rsaKey)})
	if _, err := onlyJWKS.VerifyUserToken(context.Background(), jwttest.Sign(t, jwttest.HMACKey(secret), claimsFor("u"))); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("HS256 without a secret: %v", err)
	}
	// A lone key may be used without a kid.
	if sub, err := onlyJWKS.VerifyUserToken(context.Background(), jwttest.SignWithHeader(t, rsaKey, map[string]any{"alg": "RS256"}, claimsFor("u"))); err != nil || sub != "u" {
		t.Errorf("no kid, one key: %q, %v", sub, err)
	}
}

func TestNew_Config(t *testing.T) {
	for name, cfg := range map[string]jwt.Config{
		"nothing":          {Issuer: issuer, Audience: audience},
		"no issuer":        {HS256Secret: secret, Audience: audience},
		"no audience":      {HS256Secret: secret, Issuer: issuer},
		"short secret":     {HS256Secret: []byte("short"), Issuer: issuer, Audience: audience},
		"plain http":       {JWKS: "http://issuer.example/jwks", Issuer: issuer, Audience: audience},
		"missing file":     {JWKS: filepath.Join(t.TempDir(), "none.json"), Issuer: issuer, Audience: audience},
		"JWKS of HMAC key": {JWKS: writeFile(t, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), Issuer: issuer, Audience: audience},
	} {
		if _, err := jwt.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := jwt.New(jwt.Config{JWKS: "http://127.0.0.1:1/jwks", Issuer: issuer, Audience: audience}); err != nil {
		t.Errorf("http to loopback: %v", err)
	}
}

func writeFile(tb testing.TB, s string) string {
	path := filepath.Join(tb.TempDir(), "f")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestVerifier_JWKSURL: the JWKS is fetched on first use, refetched when a
// token names a new kid (rotation), but not more than once per MinRefresh
// however many unknown kids arrive, and an unreachable issuer is EUNAVAILABLE.
func TestVerifier_JWKSURL(t *testing.T) {
	oldKey, newKey := jwttest.MustECKey(t, "2026-10"), jwttest.MustRSAKey(t, "2026-11")
	var mu sync.Mutex
	published := jwttest.JWKS(oldKey)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.Write(published)
	}))
	defer srv.Close()

	clock := now
	var clockMu sync.Mutex
	v, err := jwt.New(jwt.Config{JWKS: srv.URL + "/jwks", Issuer: issuer, Audience: audience, MinRefresh: time.Minute,
		Now: func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	ctx := context.Background()
	verify := func(k jwttest.Key) error {
		_, err := v.VerifyUserToken(ctx, jwttest.Sign(t, k, claimsFor("u", set("exp", clock.Add(time.Hour).Unix()))))
		return err
	}

	if err := verify(oldKey); err != nil || fetches.Load() != 1 {
		t.Fatalf("first token: %v, fetches %d", err, fetches.Load())
	}
	if err := verify(oldKey); err != nil || fetches.Load() != 1 {
		t.Fatalf("cached: %v, fetches %d", err, fetches.Load())
	}
	advance(2 * time.Minute)
	mu.Lock()
	published = jwttest.JWKS(oldKey, newKey)
	mu.Unlock()
	if err := verify(newKey); err != nil || fetches.Load() != 2 {
		t.Fatalf("rotated key: %v, fetches %d", err, fetches.Load())
	}
	// A flood of unknown kids causes no fetch within MinRefresh.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := verify(jwttest.MustECKey(t, "forged-"+string(rune('a'+i)))); linkd.ErrorCode(err) != linkd.EUNAUTHORIZED {
				t.Errorf("unknown kid: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 2 {
		t.Errorf("fetches after a flood of unknown kids = %d, want 2", n)
	}

	srv.Close()
	down, err := jwt.New(jwt.Config{JWKS: srv.URL + "/jwks", Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.VerifyUserToken(ctx, jwttest.Sign(t, oldKey, claimsFor("u", set("exp", time.Now().Add(time.Hour).Unix())))); linkd.ErrorCode(err) != linkd.EUNAVAILABLE {
		t.Errorf("issuer down: %v, want EUNAVAILABLE", err)
	}
}
