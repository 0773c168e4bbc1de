package webhook_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/webhook"
)

// forged returns a delivery that passes every check a forger can pass
// without Plaid's key: a fresh iat, the body's hash, a well-formed kid, and
// 64 random bytes of signature.
func forged(kid string, iat time.Time, body []byte) string {
	sig := make([]byte, 64)
	rand.Read(sig)
	return b64(headerJSON(kid)) + "." + b64(claimsJSON(iat, body)) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// randomKid returns a kid shaped like Plaid's.
func randomKid() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// wantReason fails unless err is a *linkd.Error with code and reason.
func wantReason(tb testing.TB, err error, code, reason string) {
	tb.Helper()
	if e, ok := err.(*linkd.Error); !ok || e.Code != code || e.Reason != reason {
		tb.Fatalf("Verify = %v, want %s %s", err, code, reason)
	}
}

func TestVerifier_Verify_UnknownKids(t *testing.T) {
	t.Run("RememberedForTTL", func(t *testing.T) {
		f := mustFixture(t)
		for range 3 {
			_, err := f.v.Verify(context.Background(), forged("kid-9", f.clock.Now(), body), body)
			wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyUnknown)
		}
		if n := f.keys.count(); n != 1 {
			t.Errorf("fetches for one unknown kid, thrice = %d, want 1", n)
		}
		f.clock.Advance(webhook.DefaultUnknownKidTTL)
		f.v.Verify(context.Background(), forged("kid-9", f.clock.Now(), body), body)
		if n := f.keys.count(); n != 2 {
			t.Errorf("fetches after the TTL = %d, want 2", n)
		}
	})
	t.Run("OldestForgotten", func(t *testing.T) {
		f := mustFixture(t, func(c *webhook.Config) { c.UnknownKids = 2 })
		for _, kid := range []string{"kid-a", "kid-b", "kid-c", "kid-c", "kid-b", "kid-a"} {
			f.v.Verify(context.Background(), forged(kid, f.clock.Now(), body), body)
		}
		// kid-a went when kid-c came; kid-b and kid-c stayed.
		if got := f.keys.perKid; got["kid-a"] != 2 || got["kid-b"] != 1 || got["kid-c"] != 1 {
			t.Errorf("fetches per kid = %v, want kid-a twice, the others once", got)
		}
	})
	t.Run("MismatchRemembered", func(t *testing.T) {
		f := mustFixture(t)
		f.keys.set("kid-2", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256", Key: f.key.Signer.Public().(*ecdsa.PublicKey)})
		k2 := mustKey(t, "kid-2")
		_, err := f.v.Verify(context.Background(), genuine(t, k2, t0, body), body)
		wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyMismatch)
		_, err = f.v.Verify(context.Background(), genuine(t, k2, t0, body), body)
		wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyUnknown)
		if n := f.keys.count(); n != 1 {
			t.Errorf("fetches = %d, want 1", n)
		}
	})
}

func TestVerifier_Verify_FetchBudget(t *testing.T) {
	f := mustFixture(t, func(c *webhook.Config) { c.UnknownKidFetches = 3 })
	ctx := context.Background()
	for i := range 3 {
		_, err := f.v.Verify(ctx, forged(fmt.Sprintf("kid-new-%d", i), f.clock.Now(), body), body)
		wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyUnknown)
	}
	_, err := f.v.Verify(ctx, forged("kid-new-3", f.clock.Now(), body), body)
	wantReason(t, err, linkd.EUNAVAILABLE, webhook.ReasonKeyDeferred)
	if n := f.keys.count(); n != 3 {
		t.Fatalf("fetches = %d, want the budget, 3", n)
	}

	t.Run("GenuineNewKidDeferredNotRefused", func(t *testing.T) {
		// The budget is spent: a genuine kid seen for the first time gets
		// 503, so Plaid retries, and is not remembered as unknown.
		_, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		wantReason(t, err, linkd.EUNAVAILABLE, webhook.ReasonKeyDeferred)
		f.clock.Advance(20 * time.Second) // a minute refills 3 tokens: one
		if _, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body); err != nil {
			t.Fatalf("Plaid's retry: %v", err)
		}
	})
	t.Run("KnownKidNotLimited", func(t *testing.T) {
		_, err := f.v.Verify(ctx, forged("kid-new-4", f.clock.Now(), body), body)
		wantReason(t, err, linkd.EUNAVAILABLE, webhook.ReasonKeyDeferred)
		for range 100 {
			if _, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.keys.count(); n != 4 {
			t.Errorf("fetches = %d, want 4", n)
		}
	})
}

func TestVerifier_Verify_Refresh(t *testing.T) {
	ctx := context.Background()
	pub := mustKey(t, "kid-1").Signer.Public().(*ecdsa.PublicKey)

	t.Run("LearnsExpiry", func(t *testing.T) {
		f := mustFixture(t)
		if _, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body); err != nil {
			t.Fatal(err)
		}
		// Plaid retires the key; linkd learns it at the next refetch.
		f.keys.set("kid-1", linkd.WebhookKey{KeyID: "kid-1", Alg: "ES256", Key: pub, ExpiredAt: f.clock.Now().Add(time.Minute)})
		f.clock.Advance(30 * time.Minute)
		if _, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body); err != nil {
			t.Fatalf("before the refetch: %v", err)
		}
		f.clock.Advance(30 * time.Minute)
		_, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyExpired)
		_, err = f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyExpired)
		if n := f.keys.count(); n != 2 {
			t.Errorf("fetches = %d, want 2", n)
		}
	})
	t.Run("FailureKeepsKey", func(t *testing.T) {
		f := mustFixture(t)
		f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		f.keys.err = linkd.Errorf(linkd.EUNAVAILABLE, "plaid: 503")
		f.clock.Advance(webhook.DefaultKeyRefresh)
		for range 10 {
			if _, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body); err != nil {
				t.Fatalf("Plaid down at the refetch: %v", err)
			}
		}
		if n := f.keys.count(); n != 2 {
			t.Errorf("fetches = %d, want 2: a failed refetch waits a minute", n)
		}
		f.clock.Advance(time.Minute)
		f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		if n := f.keys.count(); n != 3 {
			t.Errorf("fetches a minute later = %d, want 3", n)
		}
	})
	t.Run("Disowned", func(t *testing.T) {
		f := mustFixture(t)
		f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		delete(f.keys.keys, "kid-1")
		f.clock.Advance(webhook.DefaultKeyRefresh)
		for range 2 { // and the cached key is gone, not used again
			_, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
			wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyUnknown)
		}
		if n := f.keys.count(); n != 2 {
			t.Errorf("fetches = %d, want 2", n)
		}
	})
	t.Run("ForgeriesCannotSpendIt", func(t *testing.T) {
		// Forgeries naming the known kid trigger at most the one refetch.
		f := mustFixture(t, func(c *webhook.Config) { c.UnknownKidFetches = 1 })
		f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body)
		f.clock.Advance(webhook.DefaultKeyRefresh)
		for range 50 {
			_, err := f.v.Verify(ctx, forged("kid-1", f.clock.Now(), body), body)
			wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonSignature)
		}
		if n := f.keys.count(); n != 2 {
			t.Errorf("fetches = %d, want 2", n)
		}
	})
}

func TestVerifier_Verify_OneFetchPerKid(t *testing.T) {
	f := mustFixture(t)
	gate := make(chan struct{})
	f.keys.gate = gate
	token := genuine(t, f.key, f.clock.Now(), body)

	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := f.v.Verify(context.Background(), token, body)
			errs <- err
		}()
	}
	for f.keys.count() == 0 {
		time.Sleep(time.Millisecond) // until the fetch has started
	}
	// A delivery that gives up waiting gets 503, and the fetch goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.v.Verify(ctx, token, body)
	wantReason(t, err, linkd.EUNAVAILABLE, webhook.ReasonKeyFetch)
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := f.keys.count(); got != 1 {
		t.Errorf("fetches for %d concurrent deliveries = %d, want 1", n+1, got)
	}
}

func TestVerifier_Verify_KeySourcePanics(t *testing.T) {
	f := mustFixture(t, func(c *webhook.Config) {
		c.Keys = func(context.Context, string) (linkd.WebhookKey, error) { panic("bug") }
	})
	_, err := f.v.Verify(context.Background(), genuine(t, f.key, t0, body), body)
	wantReason(t, err, linkd.EUNAVAILABLE, webhook.ReasonKeyFetch)
}

// TestVerifier_Verify_Flood is the key-starvation incident: forged
// deliveries with made-up kids, 50 a second, among genuine ones. Forgeries
// pass every check but the signature, and no genuine delivery may fail.
func TestVerifier_Verify_Flood(t *testing.T) {
	const (
		seconds          = 30
		forgedPerSecond  = 50
		genuinePerSecond = 5
	)
	var logs bytes.Buffer
	f := mustFixture(t, func(c *webhook.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, genuine(t, f.key, f.clock.Now(), body), body); err != nil {
		t.Fatal(err) // Plaid's first webhook: linkd learns kid-1
	}

	var mu sync.Mutex
	verified, failed, forgedOK, refused, deferred := 0, 0, 0, 0, 0
	for range seconds {
		// Each second's deliveries arrive at once, from their own
		// goroutines, as a server's handlers would call Verify.
		var wg sync.WaitGroup
		now := f.clock.Now()
		for range forgedPerSecond {
			wg.Go(func() {
				_, err := f.v.Verify(ctx, forged(randomKid(), now, body), body)
				mu.Lock()
				defer mu.Unlock()
				switch linkd.ErrorCode(err) {
				case "":
					forgedOK++
				case linkd.EUNAUTHORIZED:
					refused++
				case linkd.EUNAVAILABLE:
					deferred++
				}
			})
		}
		for range genuinePerSecond {
			token := genuine(t, f.key, now, body)
			wg.Go(func() {
				_, err := f.v.Verify(ctx, token, body)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					t.Errorf("genuine delivery: %v", err)
				} else {
					verified++
				}
			})
		}
		wg.Wait()
		f.clock.Advance(time.Second)
	}

	fetches := f.keys.count() - 1 // the first, for kid-1, was before the flood
	// The budget starts full (6) and refills 6 a minute.
	maxFetches := webhook.DefaultUnknownKidFetches + webhook.DefaultUnknownKidFetches*seconds/60
	t.Logf("%d s of flood: %d/%d genuine verified, %d failed; %d forged: %d refused (401), %d deferred (503), %d accepted; %d key fetches (bound %d); %d log lines",
		seconds, verified, seconds*genuinePerSecond, failed, seconds*forgedPerSecond, refused, deferred, forgedOK, fetches, maxFetches, strings.Count(logs.String(), "\n"))
	if verified != seconds*genuinePerSecond {
		t.Errorf("genuine verified = %d, want %d", verified, seconds*genuinePerSecond)
	}
	if forgedOK != 0 {
		t.Errorf("%d forgeries accepted", forgedOK)
	}
	if fetches > maxFetches {
		t.Errorf("key fetches during the flood = %d, want at most %d", fetches, maxFetches)
	}
	// One line per reason (unknown kid, deferred) every 10 s.
	if lines := strings.Count(logs.String(), "\n"); lines > 2*(seconds/10+1) {
		t.Errorf("%d log lines for %d forgeries, want a few:\n%s", lines, seconds*forgedPerSecond, logs.String())
	}
}

func TestVerifier_Verify_Log(t *testing.T) {
	var logs bytes.Buffer
	f := mustFixture(t, func(c *webhook.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	longKid := strings.Repeat("x", 4000)
	forgery := b64(headerJSON(longKid)) + "." + b64(claimsJSON(t0, body)) + "." + b64(strings.Repeat("s", 64))
	for range 1000 {
		_, err := f.v.Verify(context.Background(), forgery, body)
		wantReason(t, err, linkd.EUNAUTHORIZED, webhook.ReasonKeyID)
	}
	f.clock.Advance(10 * time.Second)
	f.v.Verify(context.Background(), forgery, body)

	out := logs.String()
	if lines := strings.Count(out, "\n"); lines != 2 {
		t.Errorf("log lines for 1001 refusals over 10 s = %d, want 2:\n%s", lines, out)
	}
	if !strings.Contains(out, "suppressed=999") {
		t.Errorf("the second line does not count the 999 refusals not logged:\n%s", out)
	}
	if strings.Contains(out, strings.Repeat("x", 65)) || !strings.Contains(out, strings.Repeat("x", 64)) {
		t.Errorf("the kid is not cut to 64 bytes:\n%s", out)
	}
}

// BenchmarkVerifier_Verify is one genuine delivery whose key is cached: the
// cost of every webhook but the first of each kid.
func BenchmarkVerifier_Verify(b *testing.B) {
	f := mustFixture(b)
	token := genuine(b, f.key, t0, body)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, token, body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, token, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifier_Verify_Forged is a forgery naming a known kid: the most
// a forger can make linkd spend on one delivery (one signature check).
func BenchmarkVerifier_Verify_Forged(b *testing.B) {
	f := mustFixture(b)
	ctx := context.Background()
	f.v.Verify(ctx, genuine(b, f.key, t0, body), body)
	token := forged("kid-1", t0, body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, token, body); err == nil {
			b.Fatal("forgery accepted")
		}
	}
}
