package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/postgres"
	"github.com/linkd/linkd/seal"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// mustSealer returns a Sealer (package seal, as linkd runs) holding the
// keys kids, the last current. A key's bytes follow from its id, so that
// handles made with the same ids open each other's tokens.
func mustSealer(tb testing.TB, kids ...string) *seal.Sealer {
	tb.Helper()
	var entries []string
	for _, kid := range kids {
		key := sha256.Sum256([]byte("postgres test key " + kid))
		entries = append(entries, kid+":"+base64.StdEncoding.EncodeToString(key[:]))
	}
	k, err := seal.ParseMasterKeys(strings.Join(entries, ","), "")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := seal.New(k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// t0 is the tests' clock: a fixed instant, so times compare exactly.
var t0 = time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)

// MustOpen opens a store on a fresh database, closed at cleanup.
func MustOpen(tb testing.TB) (*postgres.DB, string, linkd.Sealer) {
	tb.Helper()
	dsn := pgtest.MustStart(tb)
	s := mustSealer(tb, "k1")
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
