// Package postgres implements linkd.Store on PostgreSQL, for several linkd
// replicas sharing one database. migrations/ holds the schema, applied at
// Open; every record is the protobuf the bbolt store keeps, beside the
// columns it is found and ordered by. Access tokens are stored only sealed
// by the Sealer and public tokens only as SHA-256.
//
// The SQL keeps to what CockroachDB and YugabyteDB also run: no advisory
// locks, no server clock (every time is the caller's), row locks with
// SELECT ... FOR UPDATE and conflicts settled by INSERT ... ON CONFLICT.
//
// Every method fails as linkd.Store says, with an *linkd.Error: beyond the
// codes each method names, EUNAVAILABLE when the database cannot be
// reached, is shutting down, is out of connections or disk, or the context
// ends, and EINTERNAL otherwise. The cause stays in the error's chain for
// the logs; it never holds the DSN's password or a token.
package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/internal/records"
)

// Options configures Open.
type Options struct {
	// Sealer seals access tokens before they are written and opens them
	// after they are read. Required.
	Sealer linkd.Sealer
	// Now is the clock for the times the store fills in (created_at,
	// received_at, ...); time.Now if nil. Leases and claims use the times
	// their callers pass instead.
	Now func() time.Time
	// MaxConns bounds the connection pool; pgxpool's default (the DSN's
	// pool_max_conns, else max(4, number of CPUs)) when zero.
	MaxConns int32
}

// DB is linkd's store on PostgreSQL. It implements linkd.Store and is safe
// for concurrent use, and for use beside other DBs on the same database.
type DB struct {
	pool   *pgxpool.Pool
	sealer linkd.Sealer
	now    func() time.Time
}

var _ linkd.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string; pgxpool's pool_* settings apply) and brings its schema to the
// version this linkd knows, one migration per transaction, waiting for any
// other process migrating the same database. It returns an EINVALID
// *linkd.Error for a DSN that does not parse or a missing Sealer,
// EUNAVAILABLE when the database cannot be reached, EPRECONDITION when a
// newer linkd has migrated the database already, and EINTERNAL otherwise.
// No error holds the DSN's password.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	db, err := connect(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return nil, err
	}
	return db, nil
}

// connect is Open without the migrations.
func connect(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if opts.Sealer == nil {
		return nil, linkd.InvalidField("Sealer", "a sealer for access tokens is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN: keep it out of the chain.
		return nil, linkd.InvalidField("dsn", "the Postgres DSN does not parse")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap("connect", err)
	}
	return &DB{pool: pool, sealer: opts.Sealer, now: opts.Now}, nil
}

// Close closes the pool, waiting for connections in use to be returned.
// It returns nil.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Check makes a round trip to the database and checks that its schema is
// the version this linkd knows. It returns EUNAVAILABLE when the database
// cannot be reached, and EINTERNAL when the schema is another version.
func (db *DB) Check(ctx context.Context) error {
	var one int
	if err := db.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return wrap("check", err)
	}
	v, err := schemaVersion(ctx, db.pool)
	if err != nil {
		return wrap("check", err)
	}
	switch known := latestVersion(); {
	case v > known:
		return linkd.Errorf(linkd.EINTERNAL,
			"database schema is at version %d, newer than this linkd knows (%d): a newer linkd migrated it; run that one", v, known)
	case v < known:
		return linkd.Errorf(linkd.EINTERNAL,
			"database schema is at version %d, older than this linkd needs (%d): its migrations were undone", v, known)
	}
	return nil
}

// errRollback, returned by a transaction's function, rolls the transaction
// back as a success: it had nothing to write.
var errRollback = errors.New("rollback")

// fnError carries an update function's error out of a transaction, so that
// the caller gets it unchanged and it is never retried.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// call runs an update function, marking its error as the caller's.
func call[M any](fn func(M) (bool, error), m M) (bool, error) {
	changed, err := fn(m)
	if err != nil {
		return false, &fnError{err}
	}
	return changed, nil
}

// maxAttempts bounds the retries of one transaction beyond its context:
// contention that outlasts this many is reported as EUNAVAILABLE.
const maxAttempts = 50

// inTx runs fn in a transaction and commits it, running it all again on a
// serialization failure or deadlock (so fn, and any update function it
// calls, may run more than once), after a short jittered pause, until ctx
// ends. An *linkd.Error passes through; an update function's error comes
// back unchanged; anything else is classified by wrap.
func (db *DB) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	for attempt := 1; ; attempt++ {
		err := db.tryTx(ctx, fn)
		var fe *fnError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &fe):
			return fe.err
		case !retryable(err) || attempt >= maxAttempts:
			return wrap(op, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return wrap(op, err)
		}
	}
}

func (db *DB) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) (err error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback(ctx) // the first error is the one to report
		}
	}()
	if err := fn(tx); errors.Is(err, errRollback) {
		return tx.Rollback(ctx)
	} else if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// retryable reports a transaction that lost a race and may simply run
// again: a serialization failure (CockroachDB's "restart transaction" too)
// or a deadlock, or errRace.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.Is(err, errRace) || errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// backoff is the pause before attempt+1: about 1 ms doubling to 64 ms, with
// full jitter so that contenders spread out.
func backoff(attempt int) time.Duration {
	ceil := time.Millisecond << min(attempt-1, 6)
	return ceil/2 + rand.N(ceil/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wrap passes nil and *linkd.Error chains through and classifies anything
// else: EUNAVAILABLE for what a retry may cure (the database unreachable,
// shutting down, out of connections or disk, the context ended, contention
// that outlasted the retries), ECONFLICT for a unique violation, EINTERNAL
// otherwise. The cause stays in the chain for the logs; pgx's errors name
// the user and database, never the password, and PgError.Error() leaves
// out the DETAIL that would quote a key.
func wrap(op string, err error) error {
	var e *linkd.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	code, msg := linkd.EINTERNAL, "storage failure"
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		code, msg = linkd.EUNAVAILABLE, "request ended before the database answered"
	case errors.As(err, &pe):
		switch {
		case pe.Code == "23505":
			code, msg = linkd.ECONFLICT, "record exists already"
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient resources: disk full, too many connections
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutting down, starting up
			pe.Code == "40001", pe.Code == "40P01": // contention outlasted the retries
			code, msg = linkd.EUNAVAILABLE, "database unavailable"
		}
	case errors.As(err, new(*pgconn.ConnectError)), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, pgconn.ErrConnClosed), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		code, msg = linkd.EUNAVAILABLE, "database unavailable"
	}
	return fmt.Errorf("%w: postgres %s: %w", linkd.Errorf(code, "%s", msg), op, err)
}

// canceled returns EUNAVAILABLE for a context that ended before the
// transaction began: nothing was done and a retry is safe.
func canceled(cause error) error {
	return fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "request ended before it reached the store"), cause)
}

// internal returns an EINTERNAL error for a failure that is no one's input:
// a record that does not decode, a bug.
func internal(op string, cause error) error {
	return fmt.Errorf("%w: postgres %s: %w", linkd.Errorf(linkd.EINTERNAL, "storage failure"), op, cause)
}

// maxIDLen bounds ids, as the bbolt store does, so that an oversized id is
// the caller's EINVALID in every backend.
const maxIDLen = 1024

// checkID returns an EINVALID error naming field when id is empty or too
// long.
func checkID(field, id string) error {
	if id == "" {
		return linkd.InvalidField(field, "%s is required", field)
	}
	if len(id) > maxIDLen {
		return linkd.InvalidField(field, "%s is over %d bytes", field, maxIDLen)
	}
	return nil
}

// checkInstitutionID returns an EINVALID error naming institution_id when
// id cannot be an indexed text column: a NUL byte (Postgres text has none)
// or over maxIDLen bytes (a btree entry has a size limit). Stored as given,
// either fails every insert, which the caller would retry as a storage
// failure.
func checkInstitutionID(id string) error {
	if strings.IndexByte(id, 0) >= 0 {
		return linkd.InvalidField("institution_id", "institution_id has a NUL byte")
	}
	if len(id) > maxIDLen {
		return linkd.InvalidField("institution_id", "institution_id is over %d bytes", maxIDLen)
	}
	return nil
}

// institutionIndex is what the items table's institution_id column holds
// for an Item's id: the id, or "" (not indexed, as an Item without one)
// when it cannot be (checkInstitutionID). New Items with such an id are
// refused (PutItem); one stored before they were, by this store or in a
// bbolt file being imported, is still updated and imported, and is only
// missing from ItemsAtInstitution, which answers nothing for such an id.
func institutionIndex(id string) string {
	if checkInstitutionID(id) != nil {
		return ""
	}
	return id
}

// publicTokenSum is the SHA-256 a public token is stored as.
func publicTokenSum(publicToken string) []byte {
	sum := sha256.Sum256([]byte(publicToken))
	return sum[:]
}

// ns is t as the store keeps times: Unix nanoseconds, clamped to what an
// int64 holds (years 1678 to 2262), so that a zero time (a caller's "since
// the beginning") orders before every stored time instead of wrapping.
func ns(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func marshal(op string, m proto.Message) ([]byte, error) {
	b, err := records.Marshal(m)
	if err != nil {
		return nil, internal(op+": encode", err)
	}
	return b, nil
}

func unmarshal(op string, b []byte, m proto.Message) error {
	if err := records.Unmarshal(b, m); err != nil {
		return internal(op+": decode", err)
	}
	return nil
}

// querier is what both the pool and a transaction run statements on.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
