package postgres_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testSealer is a tiny AES-256-GCM linkd.Sealer for these tests, with
// keys that can be added (rotated) while in use. The real one lives in
// package seal.
type testSealer struct {
	mu      sync.Mutex
	keys    map[string][]byte
	current string
}

func newTestSealer(tb testing.TB, kid string) *testSealer {
	s := &testSealer{keys: map[string][]byte{}}
	s.addKey(tb, kid)
	return s
}

// addKey adds a random key and makes it current.
func (s *testSealer) addKey(tb testing.TB, kid string) {
	key := make([]byte, 32)
	rand.Read(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kid], s.current = key, kid
}

func (s *testSealer) gcm(kid string) (cipher.AEAD, error) {
	s.mu.Lock()
	key, ok := s.keys[kid]
	s.mu.Unlock()
	if !ok {
		return nil, linkd.Errorf(linkd.EINTERNAL, "no key %s", kid)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (s *testSealer) SealAccessToken(itemID string, token linkd.AccessToken) (*storagev1.SealedAccessToken, error) {
	kid := s.CurrentKeyID()
	g, err := s.gcm(kid)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return &storagev1.SealedAccessToken{KeyId: kid, Nonce: nonce, Ciphertext: g.Seal(nil, nonce, []byte(token.Reveal()), []byte(itemID))}, nil
}

func (s *testSealer) UnsealAccessToken(itemID string, sealed *storagev1.SealedAccessToken) (linkd.AccessToken, error) {
	g, err := s.gcm(sealed.GetKeyId())
	if err != nil {
		return linkd.AccessToken{}, err
	}
	plain, err := g.Open(nil, sealed.GetNonce(), sealed.GetCiphertext(), []byte(itemID))
	if err != nil {
		return linkd.AccessToken{}, linkd.Errorf(linkd.EINTERNAL, "access token sealed with %s does not open", sealed.GetKeyId())
	}
	return linkd.NewAccessToken(string(plain)), nil
}

func (s *testSealer) CurrentKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// t0 is the tests' clock: a fixed instant, so times compare exactly.
var t0 = time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)

// MustOpen opens a store on a fresh database, closed at cleanup.
func MustOpen(tb testing.TB) (*postgres.DB, string, *testSealer) {
	tb.Helper()
	dsn := pgtest.MustStart(tb)
	s := newTestSealer(tb, "k1")
	return MustOpenDSN(tb, dsn, s), dsn, s
}

// MustOpenDSN opens another handle on dsn, as another replica would.
func MustOpenDSN(tb testing.TB, dsn string, s linkd.Sealer) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{Sealer: s, Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := linkd.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
