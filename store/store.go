// Package store implements linkd.Store on a bbolt file. schema.go describes
// the layout; access tokens are sealed by a linkd.Sealer and public tokens
// are kept as SHA-256 only, so the file holds neither in plain.
//
// One file is one process's: bbolt locks it, so replicas sharing state need
// another backend. Within the process every promise of linkd.Store holds.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/internal/records"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the database file.
const DefaultLockTimeout = time.Second

// DefaultMaxBatchSize bounds how many concurrent writes share one commit.
const DefaultMaxBatchSize = 128

// maxInitialMmap is how much of the file bbolt maps at open: address
// space, not memory. bbolt must remap to grow the file past its map, and
// a remap waits for every open read transaction while holding up every
// new one; with bbolt's default (the file's size), one backup stalled on
// a slow reader froze every read and write until it ended. 8 GiB is far
// past any linkd database seen so far (a file that outgrows it remaps
// at each further GiB, as before); 32-bit builds map as the file grows.
const maxInitialMmap = (8 << 30) * (strconv.IntSize / 64)

// Options configures Open.
type Options struct {
	// Sealer seals new access tokens and opens stored ones (package seal).
	// Required.
	Sealer linkd.Sealer
	// Now is the clock for the times the store fills in; time.Now if nil.
	Now func() time.Time
	// LockTimeout is how long Open waits for the file lock;
	// DefaultLockTimeout if zero or less.
	LockTimeout time.Duration
	// MaxBatchSize bounds how many writes that arrive during a commit are
	// committed together in the next one; DefaultMaxBatchSize if zero or
	// less.
	MaxBatchSize int
	// OnCommit, when set, is called after every write transaction with the
	// number of writes it carried and how long it took (commit and fsync
	// included), for a batch-size metric. It runs on the committing
	// goroutine and must be quick.
	OnCommit func(batchSize int, d time.Duration)

	migration migration // tests' settings (export_test.go)
}

// DB is linkd's store on a bbolt file. It implements linkd.Store and is safe
// for concurrent use.
type DB struct {
	bolt   *bbolt.DB
	sealer linkd.Sealer
	now    func() time.Time
	commit *committer
}

var _ linkd.Store = (*DB)(nil)

// Open opens the database at path, creating the file (0600) and its
// directory (0700) if needed, and every bucket, and migrates a file of an
// earlier release (in transactions of a bounded size, resuming an
// interrupted migration: migrate.go). It returns an EINVALID
// *linkd.Error naming Sealer when there is none, EUNAVAILABLE when another
// process holds the file past LockTimeout, and EINTERNAL for any other
// failure.
func Open(path string, opts Options) (*DB, error) {
	if opts.Sealer == nil {
		return nil, linkd.InvalidField("Sealer", "a sealer is required: no master key")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, internal("open", err)
	}
	// NoSync stays false: every method is durable when it returns.
	b, err := openBolt(path, &bbolt.Options{Timeout: opts.LockTimeout, InitialMmapSize: initialMmapSize()})
	if errors.Is(err, syscall.ENOMEM) {
		// Address space short some other way (overcommit settings): map
		// the file as it grows, as bbolt does by default.
		b, err = openBolt(path, &bbolt.Options{Timeout: opts.LockTimeout})
	}
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "database file is locked by another process"), err)
	} else if err != nil {
		return nil, internal("open", err)
	}
	db := &DB{bolt: b, sealer: opts.Sealer, now: opts.Now}
	db.commit = &committer{bolt: b, maxBatch: opts.MaxBatchSize, onCommit: opts.OnCommit}
	if err := migrate(b, db.now(), opts.migration); err != nil {
		b.Close()
		return nil, wrap("migrate", err)
	}
	return db, nil
}

// Close releases the database file, waiting for running transactions. It
// returns an EINTERNAL *linkd.Error if the file does not close cleanly.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return internal("close", err)
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.bolt.Path() }

// maxCheckErrors bounds how many inconsistencies Check reports: a garbled
// file can have one per page.
const maxCheckErrors = 20

// Check runs bbolt's consistency check over the whole file. It holds the
// write lock meanwhile, which makes it safe beside writers, and rolls back.
// It returns an EINTERNAL *linkd.Error carrying every inconsistency found,
// and EUNAVAILABLE when ctx ended before it began.
func (db *DB) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	if err := checkSize(db.bolt); err != nil {
		return internal("check", err)
	}
	// Before the write lock: writers go on meanwhile.
	if err := readAhead(db.bolt.Path()); err != nil {
		return internal("check", err)
	}
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return internal("check", err)
	}
	defer tx.Rollback()
	var errs []error
	for err := range tx.Check() {
		if len(errs) == maxCheckErrors {
			continue // drain: the checker blocks until read
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return internal("check", fmt.Errorf("%w: %w", errCorrupt, errors.Join(errs...)))
	}
	return nil
}

// update runs fn in a write transaction, group-committed with concurrent
// writers (see committer) and fsynced before it returns. fn may run more
// than once (a failed batch is rerun one function at a time), so it must
// depend only on tx and reset what it reports. An *linkd.Error from fn
// passes through; any other failure becomes EINTERNAL.
func (db *DB) update(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	return wrap(op, db.commit.do(fn))
}

// view runs fn in one read transaction, like update.
func (db *DB) view(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	return wrap(op, viewSafely(db.bolt, fn))
}

// wrap passes nil, an update function's error and *linkd.Error chains
// through and makes anything else EINTERNAL.
func wrap(op string, err error) error {
	if err == nil {
		return nil // before the targets below, which escape: two allocations a call
	}
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	var e *linkd.Error
	if errors.As(err, &e) {
		return err
	}
	if transient(err) {
		return unavailable(op, err)
	}
	return internal(op, err)
}

// fnError carries the error of a caller's update function out of the
// transaction, so that the caller gets it back unchanged, as the contract
// says, and not as a storage failure.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// fnErr marks err (nil stays nil) as an update function's.
func fnErr(err error) error {
	var fe *fnError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	return &fnError{err}
}

// internal returns an EINTERNAL error with a generic message that keeps
// cause in its chain for the logs. Causes here come from bbolt, the file
// system and protobuf, and never contain a token.
func internal(op string, cause error) error {
	if errors.Is(cause, syscall.ENOSPC) || errors.Is(cause, syscall.EDQUOT) {
		// Nothing was committed, and the same call succeeds once there is
		// room again: the caller may retry.
		return fmt.Errorf("%w: store %s: %w", linkd.Errorf(linkd.EUNAVAILABLE, "storage is full; retry later"), op, cause)
	}
	return fmt.Errorf("%w: store %s: %w", linkd.Errorf(linkd.EINTERNAL, "storage failure"), op, cause)
}

// canceled returns EUNAVAILABLE for a context that ended before the
// transaction started: nothing was done and a retry is safe.
func canceled(cause error) error {
	return fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "request ended before it reached the store"), cause)
}

// get decodes the value at key in bucket into m. It reports false when there
// is no such key.
func get(tx *bbolt.Tx, bucket, key []byte, m proto.Message) (bool, error) {
	v := tx.Bucket(bucket).Get(key)
	if v == nil {
		return false, nil
	}
	if err := records.Unmarshal(v, m); err != nil {
		return true, internal(fmt.Sprintf("decode %s value", bucket), err)
	}
	return true, nil
}

// put encodes m and stores it at key in bucket.
func put(tx *bbolt.Tx, bucket, key []byte, m proto.Message) error {
	v, err := records.Marshal(m)
	if err != nil {
		return internal(fmt.Sprintf("encode %s value", bucket), err)
	}
	return tx.Bucket(bucket).Put(key, v)
}

// checkID returns an EINVALID error naming field when id is empty or too
// long to be a key.
func checkID(field, id string) error {
	if id == "" {
		return linkd.InvalidField(field, "%s is required", field)
	}
	if len(id) > maxIDLen {
		return linkd.InvalidField(field, "%s is over %d bytes", field, maxIDLen)
	}
	return nil
}

// each decodes every value of bucket into a fresh message from newMsg and
// calls fn with its key, in key order. fn must not change the bucket.
func each[M proto.Message](tx *bbolt.Tx, bucket []byte, newMsg func() M, fn func(k []byte, m M) error) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		m := newMsg()
		if err := records.Unmarshal(v, m); err != nil {
			return internal(fmt.Sprintf("decode %s value", bucket), err)
		}
		return fn(k, m)
	})
}
