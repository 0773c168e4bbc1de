package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	"github.com/linkd/linkd/internal/pgtest"
)

// TestMain (pgtest.Main) is in helpers_test.go: one per test binary.

// nopSealer is enough for opening a DB that seals nothing.
type nopSealer struct{}

func (nopSealer) SealAccessToken(string, linkd.AccessToken) (*storagev1.SealedAccessToken, error) {
	return nil, linkd.Errorf(linkd.EINTERNAL, "not in this test")
}
func (nopSealer) UnsealAccessToken(string, *storagev1.SealedAccessToken) (linkd.AccessToken, error) {
	return linkd.AccessToken{}, linkd.Errorf(linkd.EINTERNAL, "not in this test")
}
func (nopSealer) CurrentKeyID() string { return "none" }

// TestApply_Later: a migration released after a database was created is
// applied once, by one of several processes starting together; one that
// fails rolls back whole and leaves the version where it was.
func TestApply_Later(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.MustStart(t)
	db, err := Open(ctx, dsn, Options{Sealer: nopSealer{}, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	n := len(ms)

	bad := append(ms[:n:n], migration{version: n + 1, name: "bad.sql", sql: `
		CREATE TABLE half_done (x int);
		SELECT 1 / 0;`})
	if err := db.apply(ctx, bad); err == nil {
		t.Fatal("a failing migration applied")
	}
	if v, _ := schemaVersion(ctx, db.pool); v != n {
		t.Fatalf("version %d after a failed migration, want %d", v, n)
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass('half_done') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("the failed migration left its table behind (%v)", err)
	}

	next := append(ms[:n:n], migration{version: n + 1, name: "next.sql", sql: `
		ALTER TABLE items ADD COLUMN counted integer NOT NULL DEFAULT 0;
		UPDATE items SET counted = counted + 1;`})
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			// Processes of the release that brings the migration.
			other, err := connect(ctx, dsn, Options{Sealer: nopSealer{}})
			if err == nil {
				err = other.apply(ctx, next)
				other.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	if v, _ := schemaVersion(ctx, db.pool); v != n+1 {
		t.Fatalf("version %d, want %d", v, n+1)
	}
	// Open, which knows only n, now refuses the database.
	if _, err := Open(ctx, dsn, Options{Sealer: nopSealer{}}); linkd.ErrorCode(err) != linkd.EPRECONDITION {
		t.Fatalf("Open of a newer schema: %v, want EPRECONDITION", err)
	}
}
