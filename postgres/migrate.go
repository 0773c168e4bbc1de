package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linkd/linkd"
)

// The schema is the files in migrations/, named NNNN_what.sql and applied
// in order, each in one transaction with its row in schema_migrations. A
// file, once released, never changes: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, numbered 1, 2, ...
// without gaps; a misnamed file fails every Open, and so every test.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for i, name := range names { // fs.Glob returns them sorted
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want number %04d", base, i+1)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	return out, nil
}

// latestVersion is the schema version this linkd knows.
func latestVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// The bootstrap creates schema_migrations and its version-0 row, which is
// the migrations' lock: every migration transaction first takes that row
// FOR UPDATE, so that processes opening at once migrate one after another,
// and each finds the versions the one before applied. Row locks rather
// than advisory locks keep this portable to CockroachDB and YugabyteDB.
const bootstrapSQL = `
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text    NOT NULL,
    applied_ns bigint  NOT NULL
);
INSERT INTO schema_migrations (version, name, applied_ns) VALUES (0, 'lock', 0)
ON CONFLICT (version) DO NOTHING;
`

// migrate brings the schema to latestVersion. It returns EPRECONDITION
// when the database is at a newer version than this linkd knows.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return internal("migrations", err)
	}
	return db.apply(ctx, ms)
}

// apply brings the schema to the last of ms, which are numbered 1, 2, ...
func (db *DB) apply(ctx context.Context, ms []migration) error {
	// Two processes creating the table at once can clash in the catalog
	// (a unique violation on pg_type, "type already exists", "relation
	// already exists"); the loser runs it again and finds the table there.
	for attempt := 1; ; attempt++ {
		_, err := db.pool.Exec(ctx, bootstrapSQL)
		if err == nil {
			break
		}
		var pe *pgconn.PgError
		if attempt >= maxAttempts || !(retryable(err) || errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07" || pe.Code == "42710")) {
			return wrap("create schema_migrations", err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return wrap("create schema_migrations", err)
		}
	}
	for _, m := range ms {
		err := db.inTx(ctx, "migrate "+m.name, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT version FROM schema_migrations WHERE version = 0 FOR UPDATE`); err != nil {
				return err
			}
			v, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(ms) {
				return linkd.Errorf(linkd.EPRECONDITION,
					"database schema is at version %d, newer than this linkd knows (%d): run a newer linkd", v, len(ms))
			}
			if v >= m.version {
				return errRollback // another process applied it
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ns) VALUES ($1, $2, $3)`,
				m.version, m.name, ns(db.now()))
			return err
		})
		if err != nil {
			return err
		}
	}
	// With nothing to apply the loop above never looked.
	if len(ms) == 0 {
		return nil
	}
	v, err := schemaVersion(ctx, db.pool)
	if err != nil {
		return wrap("schema version", err)
	}
	if v > len(ms) {
		return linkd.Errorf(linkd.EPRECONDITION,
			"database schema is at version %d, newer than this linkd knows (%d): run a newer linkd", v, len(ms))
	}
	return nil
}

// schemaVersion is the highest applied migration.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
