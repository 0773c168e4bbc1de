package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/postgres"
	"github.com/linkd/linkd/storetest"
)

// The conformance suite, on a fresh database per subtest.
func TestDB_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, sealer linkd.Sealer) storetest.Backend {
		dsn := pgtest.MustStart(t)
		db, closeDB := mustOpenStore(t, dsn, sealer)
		return storetest.Backend{
			Store: db,
			Reopen: func(t *testing.T, sealer linkd.Sealer) linkd.Store {
				closeDB()
				db, closeDB = mustOpenStore(t, dsn, sealer)
				return db
			},
			Raw: func(t *testing.T) []byte { return dumpRaw(t, dsn) },
		}
	})
}

// The promises across handles: two DBs on one database, as two replicas.
func TestDB_ConformanceShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T, sealer linkd.Sealer) (linkd.Store, linkd.Store) {
		dsn := pgtest.MustStart(t)
		a, _ := mustOpenStore(t, dsn, sealer)
		b, _ := mustOpenStore(t, dsn, sealer)
		return a, b
	})
}

// The same under SERIALIZABLE (CockroachDB's only level), where a race
// is a serialization failure retried, not a wait on a row lock; in
// particular a claim's search for pending links runs on the snapshot
// taken before it queued on the link's gate.
func TestDB_ConformanceShared_Serializable(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T, sealer linkd.Sealer) (linkd.Store, linkd.Store) {
		dsn := pgtest.MustStart(t) + "&default_transaction_isolation=serializable"
		a, _ := mustOpenStore(t, dsn, sealer)
		b, _ := mustOpenStore(t, dsn, sealer)
		return a, b
	})
}

// mustOpenStore opens a handle on dsn that is checked (Check) and closed
// at cleanup unless closed before by the function it returns.
func mustOpenStore(t *testing.T, dsn string, sealer linkd.Sealer) (*postgres.DB, func()) {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{Sealer: sealer})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closed := false
	closeDB := func() { closed = true; db.Close() }
	t.Cleanup(func() {
		if closed {
			return
		}
		if err := db.Check(context.Background()); err != nil && !t.Failed() {
			t.Errorf("Check at cleanup: %v", err)
		}
		db.Close()
	})
	return db, closeDB
}

// dumpRaw returns every value of every column of every table as the bytes
// Postgres keeps (text as UTF-8, bytea as is, the rest as text), as
// pg_dump would see them, for the suite's search for plain secrets.
func dumpRaw(tb testing.TB, dsn string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := raw(tb, dsn)
	rows, err := c.Query(ctx, `
		SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`)
	must(tb, err)
	type col struct{ Table, Column, Type string }
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[col])
	must(tb, err)
	var out bytes.Buffer
	for _, cl := range cols {
		expr := pgx.Identifier{cl.Column}.Sanitize()
		switch cl.Type {
		case "bytea":
		case "text", "character varying":
			expr = "convert_to(" + expr + ", 'UTF8')"
		default:
			expr = "convert_to(" + expr + "::text, 'UTF8')"
		}
		rows, err := c.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s`, expr, pgx.Identifier{cl.Table}.Sanitize()))
		must(tb, err)
		vals, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		must(tb, err)
		for _, v := range vals {
			out.Write(v)
			out.WriteByte(0)
		}
	}
	return out.Bytes()
}
