package webhook_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/jwt/jwttest"
	"github.com/linkd/linkd/webhook"
)

// t0 is the tests' start time; the clock only moves when a test moves it.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// body is a webhook body as Plaid sends it.
var body = []byte(`{"webhook_type":"ITEM","webhook_code":"LOGIN_REPAIRED","item_id":"item-1","error":null,"environment":"sandbox"}`)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeKeys plays /webhook_verification_key/get: it answers with the key
// published under a kid, and with EINVALID (as the Plaid client does) for
// any other kid. It counts fetches.
type fakeKeys struct {
	mu      sync.Mutex
	keys    map[string]linkd.WebhookKey
	err     error         // when set, every fetch fails with it
	gate    chan struct{} // when set, fetches wait for it to close
	fetches int
	perKid  map[string]int
}

func newFakeKeys() *fakeKeys {
	return &fakeKeys{keys: map[string]linkd.WebhookKey{}, perKid: map[string]int{}}
}

// publish makes kid answer with k's public half.
func (f *fakeKeys) publish(k jwttest.Key) {
	f.set(k.Kid, linkd.WebhookKey{KeyID: k.Kid, Alg: "ES256", Key: k.Signer.Public().(*ecdsa.PublicKey)})
}

func (f *fakeKeys) set(kid string, k linkd.WebhookKey) {
	f.mu.Lock()
	f.keys[kid] = k
	f.mu.Unlock()
}

func (f *fakeKeys) Get(ctx context.Context, kid string) (linkd.WebhookKey, error) {
	f.mu.Lock()
	f.fetches++
	f.perKid[kid]++
	gate, err := f.gate, f.err
	k, ok := f.keys[kid]
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return linkd.WebhookKey{}, err
	} else if !ok {
		return linkd.WebhookKey{}, &linkd.Error{Code: linkd.EINVALID, Field: "key_id", Message: "invalid key_id",
			Plaid: &linkd.PlaidError{ErrorType: "INVALID_REQUEST", ErrorCode: "INVALID_FIELD", RequestID: "req-1", HTTPStatus: 400}}
	}
	return k, nil
}

func (f *fakeKeys) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

// fixture is a Verifier on a fake clock and a fake key source that
// publishes one genuine key, "kid-1".
type fixture struct {
	clock *clock
	keys  *fakeKeys
	key   jwttest.Key
	v     *webhook.Verifier
}

func mustFixture(tb testing.TB, change ...func(*webhook.Config)) *fixture {
	tb.Helper()
	f := &fixture{clock: &clock{now: t0}, keys: newFakeKeys(), key: mustKey(tb, "kid-1")}
	f.keys.publish(f.key)
	cfg := webhook.Config{Keys: f.keys.Get, Now: f.clock.Now}
	for _, c := range change {
		c(&cfg)
	}
	v, err := webhook.NewVerifier(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	f.v = v
	return f
}

// mustKey is jwttest.MustECKey with a stable test-wide key per kid, so
// tables and benchmarks do not pay for key generation per case.
func mustKey(tb testing.TB, kid string) jwttest.Key {
	tb.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	k, ok := testKeys[kid]
	if !ok {
		k = jwttest.MustECKey(tb, kid)
		testKeys[kid] = k
	}
	return k
}

var (
	keysMu   sync.Mutex
	testKeys = map[string]jwttest.Key{}
)

// claimsJSON returns Plaid's claims for body at iat.
func claimsJSON(iat time.Time, body []byte) string {
	return fmt.Sprintf(`{"iat":%d,"request_body_sha256":"%x"}`, iat.Unix(), sha256.Sum256(body))
}

// headerJSON returns Plaid's header for kid.
func headerJSON(kid string) string {
	return fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"JWT"}`, kid)
}

// sign returns a JWT of header and claims, byte for byte, signed with k.
func sign(tb testing.TB, k jwttest.Key, header, claims string) string {
	tb.Helper()
	return jwttest.SignRaw(tb, k, []byte(header), []byte(claims))
}

// genuine returns the Plaid-Verification header Plaid would send with body
// at iat, signed with k.
func genuine(tb testing.TB, k jwttest.Key, iat time.Time, body []byte) string {
	tb.Helper()
	return sign(tb, k, headerJSON(k.Kid), claimsJSON(iat, body))
}

// withSignature replaces a JWT's signature segment.
func withSignature(token, sig string) string {
	return token[:strings.LastIndex(token, ".")+1] + sig
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// nonCanonical re-spells the last character of a base64url segment with
// its unused low bits set: a lax decoder reads the same bytes.
func nonCanonical(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

// signSegments signs header and claims segments as given, however they
// are spelled.
func signSegments(tb testing.TB, k jwttest.Key, header, claims string) string {
	tb.Helper()
	digest := sha256.Sum256([]byte(header + "." + claims))
	r, s, err := ecdsa.Sign(rand.Reader, k.Signer.(*ecdsa.PrivateKey), digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return header + "." + claims + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// malleate returns the other valid ES256 signature of a token: s becomes
// n−s, which verifies too.
func malleate(tb testing.TB, token string) string {
	tb.Helper()
	seg := token[strings.LastIndex(token, ".")+1:]
	sig, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatal(err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	return withSignature(token, base64.RawURLEncoding.EncodeToString(sig))
}

func TestVerifier_Verify(t *testing.T) {
	key := mustKey(t, "kid-1")
	other := mustKey(t, "kid-1-forged") // not published; signs under kid-1 below
	other.Kid = "kid-1"
	long := mustKey(t, strings.Repeat("k", webhook.MaxKeyIDBytes))
	pub := key.Signer.Public().(*ecdsa.PublicKey)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsJSON(t0, body)
	valid := genuine(t, key, t0, body)
	seg := strings.Split(valid, ".")

	tests := []struct {
		name  string
		jwt   string
		body  []byte                  // body when nil
		setup func(*fixture)          // changes the key source
		want  string                  // "" accepted; else the Reason
		fetch int                     // key fetches expected
		code  string                  // the code when not EUNAUTHORIZED
		cfg   func(c *webhook.Config) // changes the config
	}{
		{name: "genuine", jwt: valid, fetch: 1},
		{name: "genuine, iat within the skew ahead", jwt: genuine(t, key, t0.Add(50*time.Second), body), fetch: 1},
		{name: "genuine, iat exactly MaxAge old", jwt: genuine(t, key, t0.Add(-webhook.DefaultMaxAge), body), fetch: 1},
		{name: "genuine, key retired later", jwt: valid, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256", Key: pub, ExpiredAt: t0.Add(time.Second)})
		}},
		{name: "genuine, key without alg", jwt: valid, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Key: pub})
		}},
		{name: "genuine, longest kid", jwt: genuine(t, long, t0, body), fetch: 1, setup: func(f *fixture) { f.keys.publish(long) }},
		{name: "genuine, segments signed as spelled", jwt: signSegments(t, key, seg[0], seg[1]), fetch: 1},
		{name: "genuine, empty body", jwt: genuine(t, key, t0, []byte{}), body: []byte{}, fetch: 1},

		// The header is there and is three strictly encoded segments.
		{name: "no header", jwt: "", want: webhook.ReasonMissing},
		{name: "four segments", jwt: valid + ".x", want: webhook.ReasonMalformed},
		{name: "two segments", jwt: seg[0] + "." + seg[1], want: webhook.ReasonMalformed},
		{name: "signature with stray bits", jwt: withSignature(valid, nonCanonical(seg[2])), want: webhook.ReasonMalformed},
		{name: "header with stray bits", jwt: signSegments(t, key, nonCanonical(seg[0]), seg[1]), want: webhook.ReasonMalformed},
		{name: "claims with stray bits", jwt: signSegments(t, key, seg[0], nonCanonical(seg[1])), want: webhook.ReasonMalformed},
		{name: "padded signature", jwt: valid + "==", want: webhook.ReasonMalformed},
		{name: "header in standard base64", jwt: base64.StdEncoding.EncodeToString([]byte(headerJSON("kid-1")+"??")) + "." + seg[1] + "." + seg[2], want: webhook.ReasonMalformed},
		{name: "header not JSON", jwt: b64("alg") + "." + seg[1] + "." + seg[2], want: webhook.ReasonMalformed},
		{name: "too long", jwt: strings.Repeat("a", 10000), want: webhook.ReasonMalformed},
		{name: "signature of 63 bytes", jwt: withSignature(valid, base64.RawURLEncoding.EncodeToString(make([]byte, 63))), want: webhook.ReasonMalformed},
		{name: "claims not JSON", jwt: sign(t, key, headerJSON("kid-1"), `iat=1`), want: webhook.ReasonMalformed},

		// Header: alg ES256, a well-formed kid, no crit, no member twice.
		{name: "alg none", jwt: sign(t, key, `{"alg":"none","kid":"kid-1"}`, claims), want: webhook.ReasonAlg},
		{name: "alg none, no signature", jwt: b64(`{"alg":"none","kid":"kid-1"}`) + "." + seg[1] + ".", want: webhook.ReasonAlg},
		{name: "alg HS256", jwt: sign(t, key, `{"alg":"HS256","kid":"kid-1"}`, claims), want: webhook.ReasonAlg},
		{name: "alg RS256", jwt: sign(t, key, `{"alg":"RS256","kid":"kid-1"}`, claims), want: webhook.ReasonAlg},
		{name: "alg es256", jwt: sign(t, key, `{"alg":"es256","kid":"kid-1"}`, claims), want: webhook.ReasonAlg},
		{name: "no alg", jwt: sign(t, key, `{"kid":"kid-1"}`, claims), want: webhook.ReasonAlg},
		{name: "no kid", jwt: sign(t, key, `{"alg":"ES256"}`, claims), want: webhook.ReasonKeyID},
		{name: "empty kid", jwt: sign(t, key, `{"alg":"ES256","kid":""}`, claims), want: webhook.ReasonKeyID},
		{name: "kid too long", jwt: sign(t, key, headerJSON(strings.Repeat("k", webhook.MaxKeyIDBytes+1)), claims), want: webhook.ReasonKeyID},
		{name: "kid with a slash", jwt: sign(t, key, headerJSON("../kid-1"), claims), want: webhook.ReasonKeyID},
		{name: "kid with a space", jwt: sign(t, key, headerJSON("kid 1"), claims), want: webhook.ReasonKeyID},
		{name: "kid not ASCII", jwt: sign(t, key, headerJSON("kïd-1"), claims), want: webhook.ReasonKeyID},
		{name: "kid not a string", jwt: sign(t, key, `{"alg":"ES256","kid":1}`, claims), want: webhook.ReasonMalformed},
		{name: "crit", jwt: sign(t, key, `{"alg":"ES256","kid":"kid-1","crit":["b64"],"b64":true}`, claims), want: webhook.ReasonCrit},
		{name: "crit empty", jwt: sign(t, key, `{"alg":"ES256","kid":"kid-1","crit":[]}`, claims), want: webhook.ReasonCrit},
		// encoding/json keeps the last of repeated members, matching names
		// in any case: without the check each of these would verify.
		{name: "alg twice", jwt: sign(t, key, `{"alg":"none","alg":"ES256","kid":"kid-1"}`, claims), want: webhook.ReasonMalformed},
		{name: "kid twice in another case", jwt: sign(t, key, `{"alg":"ES256","kid":"kid-9","KID":"kid-1"}`, claims), want: webhook.ReasonMalformed},
		{name: "body hash twice in another case", jwt: sign(t, key, headerJSON("kid-1"),
			fmt.Sprintf(`{"iat":%d,"request_body_sha256":"%x","Request_Body_SHA256":"%x"}`, t0.Unix(), sha256.Sum256([]byte("other")), sha256.Sum256(body))),
			want: webhook.ReasonMalformed},

		// Claims: iat present, neither ahead nor old; the body's hash.
		{name: "no iat", jwt: sign(t, key, headerJSON("kid-1"), fmt.Sprintf(`{"request_body_sha256":"%x"}`, sha256.Sum256(body))), want: webhook.ReasonIatMissing},
		{name: "iat not a number", jwt: sign(t, key, headerJSON("kid-1"), fmt.Sprintf(`{"iat":"soon","request_body_sha256":"%x"}`, sha256.Sum256(body))), want: webhook.ReasonMalformed},
		{name: "iat negative", jwt: sign(t, key, headerJSON("kid-1"), fmt.Sprintf(`{"iat":-1,"request_body_sha256":"%x"}`, sha256.Sum256(body))), want: webhook.ReasonIatMissing},
		{name: "iat ahead beyond the skew", jwt: genuine(t, key, t0.Add(webhook.DefaultMaxSkew+time.Second), body), want: webhook.ReasonIatFuture},
		{name: "iat far ahead", jwt: genuine(t, key, t0.Add(24*time.Hour), body), want: webhook.ReasonIatFuture},
		{name: "iat too old", jwt: genuine(t, key, t0.Add(-webhook.DefaultMaxAge-time.Second), body), want: webhook.ReasonIatStale},
		{name: "iat older than a shorter MaxAge", jwt: genuine(t, key, t0.Add(-time.Minute-time.Second), body), want: webhook.ReasonIatStale,
			cfg: func(c *webhook.Config) { c.MaxAge = time.Minute }},
		{name: "tampered body", jwt: valid, body: []byte(`{"webhook_type":"ITEM","webhook_code":"ERROR","item_id":"item-1"}`), want: webhook.ReasonBodyHash},
		{name: "body hash not hex", jwt: sign(t, key, headerJSON("kid-1"), fmt.Sprintf(`{"iat":%d,"request_body_sha256":"zz"}`, t0.Unix())), want: webhook.ReasonBodyHash},
		{name: "no body hash", jwt: sign(t, key, headerJSON("kid-1"), fmt.Sprintf(`{"iat":%d}`, t0.Unix())), want: webhook.ReasonBodyHash},

		// The key: Plaid's, for this kid, ES256, not retired; the signature.
		{name: "signed by another key", jwt: genuine(t, other, t0, body), want: webhook.ReasonSignature, fetch: 1},
		{name: "tampered claims", jwt: seg[0] + "." + b64(claimsJSON(t0.Add(time.Second), body)) + "." + seg[2], want: webhook.ReasonSignature, fetch: 1},
		{name: "unknown kid", jwt: genuine(t, mustKey(t, "kid-9"), t0, body), want: webhook.ReasonKeyUnknown, fetch: 1},
		{name: "key source answers for another kid", jwt: valid, want: webhook.ReasonKeyMismatch, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-2", Alg: "ES256", Key: pub})
		}},
		{name: "key for RS256", jwt: valid, want: webhook.ReasonKeyUnusable, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "RS256", Key: pub})
		}},
		{name: "key on P-384", jwt: valid, want: webhook.ReasonKeyUnusable, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256", Key: &p384.PublicKey})
		}},
		{name: "key with no public key", jwt: valid, want: webhook.ReasonKeyUnusable, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256"})
		}},
		{name: "key retired", jwt: valid, want: webhook.ReasonKeyExpired, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256", Key: pub, ExpiredAt: t0.Add(-time.Second)})
		}},
		{name: "key retired this instant", jwt: valid, want: webhook.ReasonKeyExpired, fetch: 1, setup: func(f *fixture) {
			f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256", Key: pub, ExpiredAt: t0})
		}},
		{name: "Plaid down", jwt: valid, want: webhook.ReasonKeyFetch, code: linkd.EUNAVAILABLE, fetch: 1, setup: func(f *fixture) {
			f.keys.err = linkd.Errorf(linkd.EUNAVAILABLE, "plaid: 502")
		}},
		{name: "Plaid rate-limits", jwt: valid, want: webhook.ReasonKeyFetch, code: linkd.EUNAVAILABLE, fetch: 1, setup: func(f *fixture) {
			f.keys.err = linkd.Errorf(linkd.ERATELIMIT, "plaid: RATE_LIMIT_EXCEEDED")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfgs []func(*webhook.Config)
			if tt.cfg != nil {
				cfgs = append(cfgs, tt.cfg)
			}
			f := mustFixture(t, cfgs...)
			if tt.setup != nil {
				tt.setup(f)
			}
			b := body
			if tt.body != nil {
				b = tt.body
			}
			d, err := f.v.Verify(context.Background(), tt.jwt, b)
			if n := f.keys.count(); n != tt.fetch {
				t.Errorf("key fetches = %d, want %d", n, tt.fetch)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want a delivery", err)
				}
				if d.KeyID == "" || d.DeliveryID == "" || d.IssuedAt.IsZero() {
					t.Errorf("Verify = %+v, want every field set", d)
				}
				return
			}
			wantCode := tt.code
			if wantCode == "" {
				wantCode = linkd.EUNAUTHORIZED
			}
			e, ok := err.(*linkd.Error)
			if !ok || e.Code != wantCode || e.Reason != tt.want {
				t.Fatalf("Verify = %#v, want *linkd.Error %s %s", err, wantCode, tt.want)
			}
			if d != (webhook.Delivery{}) {
				t.Errorf("Verify returned a delivery with its error: %+v", d)
			}
			if len(e.Message) > 120 || (len(tt.jwt) > 8 && strings.Contains(e.Message, tt.jwt[:8])) {
				t.Errorf("message %q is long or quotes the JWT", e.Message)
			}
		})
	}
}

func TestVerifier_Verify_Delivery(t *testing.T) {
	f := mustFixture(t)
	iat := t0.Add(-time.Minute)
	token := genuine(t, f.key, iat, body)
	d, err := f.v.Verify(context.Background(), token, body)
	if err != nil {
		t.Fatal(err)
	}
	want := webhook.Delivery{KeyID: "kid-1", DeliveryID: d.DeliveryID,
		IssuedAt: iat, ExpiresAt: iat.Add(webhook.DefaultMaxAge)}
	if d != want || len(d.DeliveryID) != 64 {
		t.Fatalf("Verify = %+v, want %+v with a hex SHA-256 id", d, want)
	}

	t.Run("OtherSignatureSameID", func(t *testing.T) {
		// ECDSA signatures are malleable: a replayer can re-spell a captured
		// JWT's signature without the key. The ID must not change with it.
		again, err := f.v.Verify(context.Background(), malleate(t, token), body)
		if err != nil {
			t.Fatalf("the malleated signature: %v (the test's premise is that it verifies)", err)
		}
		if again.DeliveryID != d.DeliveryID {
			t.Errorf("DeliveryID = %s for the same delivery re-signed, want %s", again.DeliveryID, d.DeliveryID)
		}
	})
	t.Run("SameBodySameSecondNewID", func(t *testing.T) {
		// Plaid signing the same body twice in one second (iat has
		// seconds) makes two deliveries; the second must not read as a
		// replay of the first.
		second, err := f.v.Verify(context.Background(), genuine(t, f.key, iat, body), body)
		if err != nil || second.DeliveryID == d.DeliveryID {
			t.Errorf("Verify = %+v, %v; want another DeliveryID", second, err)
		}
	})
	t.Run("NewDeliveryNewID", func(t *testing.T) {
		other, err := f.v.Verify(context.Background(), genuine(t, f.key, iat.Add(time.Second), body), body)
		if err != nil || other.DeliveryID == d.DeliveryID {
			t.Errorf("Verify = %+v, %v; want another DeliveryID", other, err)
		}
	})
}

func TestNewVerifier(t *testing.T) {
	if _, err := webhook.NewVerifier(webhook.Config{}); err == nil {
		t.Error("NewVerifier without a key source: no error")
	}
	if _, err := webhook.NewVerifier(webhook.Config{Keys: newFakeKeys().Get, MaxAge: -time.Second}); err == nil {
		t.Error("NewVerifier with a negative MaxAge: no error")
	}
}

// FuzzVerify checks that no header and body make Verify panic, accept
// anything not signed by the one published key, or quote the header in
// its error.
func FuzzVerify(f *testing.F) {
	fx := mustFixture(f)
	valid := genuine(f, fx.key, t0, body)
	seg := strings.Split(valid, ".")
	for _, seed := range []string{
		valid, "", valid + ".x", seg[0] + "." + seg[1],
		withSignature(valid, nonCanonical(seg[2])),
		sign(f, fx.key, `{"alg":"none","alg":"ES256","kid":"kid-1"}`, claimsJSON(t0, body)),
		sign(f, fx.key, `{"alg":"ES256","kid":"kid-1","crit":[]}`, claimsJSON(t0, body)),
		forged("kid-9", t0, body),
	} {
		f.Add(seed, body)
	}
	f.Fuzz(func(t *testing.T, header string, b []byte) {
		d, err := fx.v.Verify(context.Background(), header, b)
		if err == nil {
			if d.KeyID != "kid-1" || d.DeliveryID == "" {
				t.Fatalf("Verify accepted %q: %+v", header, d)
			}
			return
		}
		e, ok := err.(*linkd.Error)
		if !ok || (e.Code != linkd.EUNAUTHORIZED && e.Code != linkd.EUNAVAILABLE) || e.Reason == "" {
			t.Fatalf("Verify = %#v, want a *linkd.Error with a Reason", err)
		}
		if len(header) >= 16 && strings.Contains(e.Message, header[:16]) {
			t.Fatalf("the message %q quotes the header", e.Message)
		}
	})
}
