package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/postgres"
)

// raw connects to dsn directly, for checks behind the store's back.
func raw(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func versions(tb testing.TB, c *pgx.Conn) []int {
	tb.Helper()
	rows, err := c.Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestOpen_Migrations(t *testing.T) {
	ctx := context.Background()
	t.Run("Fresh", func(t *testing.T) {
		db, dsn, _ := MustOpen(t)
		must(t, db.Check(ctx))
		if v := versions(t, raw(t, dsn)); len(v) < 2 || v[0] != 0 || v[len(v)-1] != len(v)-1 {
			t.Fatalf("schema_migrations versions %v, want the lock row 0 then 1..n", v)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		_, dsn, s := MustOpen(t)
		before := versions(t, raw(t, dsn))
		db := MustOpenDSN(t, dsn, s)
		must(t, db.Check(ctx))
		if after := versions(t, raw(t, dsn)); len(after) != len(before) {
			t.Fatalf("reopening changed schema_migrations from %v to %v", before, after)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		dsn := pgtest.MustStart(t)
		s := mustSealer(t, "k1")
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				db, err := postgres.Open(ctx, dsn, postgres.Options{Sealer: s})
				if err == nil {
					err = db.Check(ctx)
					db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
		v := versions(t, raw(t, dsn))
		for i, x := range v {
			if x != i {
				t.Fatalf("schema_migrations versions %v: a migration ran twice or was skipped", v)
			}
		}
	})
	t.Run("ErrNewerSchema", func(t *testing.T) {
		db, dsn, s := MustOpen(t)
		c := raw(t, dsn)
		if _, err := c.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ns) VALUES (9999, '9999_future.sql', 0)`); err != nil {
			t.Fatal(err)
		}
		err := db.Check(ctx)
		wantCode(t, err, linkd.EINTERNAL)
		if !strings.Contains(linkd.ErrorMessage(err), "9999") {
			t.Errorf("Check message %q does not name the version", linkd.ErrorMessage(err))
		}
		_, err = postgres.Open(ctx, dsn, postgres.Options{Sealer: s})
		wantCode(t, err, linkd.EPRECONDITION)
		if !strings.Contains(linkd.ErrorMessage(err), "newer") {
			t.Errorf("Open message %q does not say the schema is newer", linkd.ErrorMessage(err))
		}
	})
}

// TestDB_Unavailable: what a replica sees when Postgres is out of reach,
// and that no error carries the DSN password.
func TestDB_Unavailable(t *testing.T) {
	// No deadline beyond the test's: a loaded machine is slow, not down.
	ctx := context.Background()
	s := mustSealer(t, "k1")
	t.Run("ErrUnavailable", func(t *testing.T) {
		// Nothing listens on port 1; the password must not leak.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := postgres.Open(ctx, "postgres://linkd:hunter2secret@127.0.0.1:1/linkd?connect_timeout=2", postgres.Options{Sealer: s})
		wantCode(t, err, linkd.EUNAVAILABLE)
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Fatalf("error %q holds the DSN password", err)
		}
	})
	t.Run("ErrBadDSN", func(t *testing.T) {
		_, err := postgres.Open(ctx, "postgres://linkd:hunter2secret@127.0.0.1:99999999/x?sslmode=bogus", postgres.Options{Sealer: s})
		wantCode(t, err, linkd.EINVALID)
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Fatalf("error %q holds the DSN password", err)
		}
	})
	t.Run("ErrNoSealer", func(t *testing.T) {
		_, err := postgres.Open(ctx, "postgres://127.0.0.1:1/x", postgres.Options{})
		wantCode(t, err, linkd.EINVALID)
	})
	t.Run("ErrUnavailablePoolExhausted", func(t *testing.T) {
		dsn := pgtest.MustStart(t)
		db, err := postgres.Open(ctx, dsn, postgres.Options{Sealer: s, MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, err = db.PutItem(ctx, linkd.NewItem{Item: &linkdv1.Item{ItemId: "item-1", ClientUserId: "user-1"}, AccessToken: linkd.NewAccessToken("access-1")})
		must(t, err)
		// An update function that waits holds the only connection.
		holding, release := make(chan struct{}), make(chan struct{})
		go db.UpdateItem(ctx, "item-1", func(*linkdv1.Item) (bool, error) {
			select {
			case holding <- struct{}{}:
			default:
			}
			<-release
			return false, nil
		})
		<-holding
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = db.GetItem(short, "item-1")
		close(release)
		wantCode(t, err, linkd.EUNAVAILABLE)
	})
	t.Run("ErrUnavailableAfterShutdown", func(t *testing.T) {
		db, dsn, _ := MustOpen(t)
		// Terminating every connection is what an admin shutdown or a
		// failover does to a pool.
		c := raw(t, dsn)
		if _, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		err := db.Check(ctx)
		if err != nil {
			wantCode(t, err, linkd.EUNAVAILABLE)
		}
	})
}
