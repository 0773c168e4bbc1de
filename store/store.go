// Package store implements linkd.Store on a bbolt file. schema.go describes
// the layout; access tokens are sealed with AES-256-GCM under a Keyring and
// public tokens are kept as SHA-256 only, so the file holds neither in plain.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the database file.
const DefaultLockTimeout = time.Second

// Options configures Open.
type Options struct {
	// Keys seals new access tokens with Keys.Current and opens old ones with
	// whichever key sealed them. Required.
	Keys Keyring
	// Now is the clock for the times the store fills in; time.Now if nil.
	Now func() time.Time
	// LockTimeout is how long Open waits for the file lock;
	// DefaultLockTimeout if zero or less.
	LockTimeout time.Duration
	// MaxBatchSize and MaxBatchDelay tune group commit: concurrent writes
	// share one fsynced commit. DefaultMaxBatchSize and DefaultMaxBatchDelay
	// (measured, see BENCHMARKS.md) when zero; a negative delay means none.
	MaxBatchSize  int
	MaxBatchDelay time.Duration
}

// Group commit defaults, from BenchmarkDB_PutItem_Concurrent on this
// project's machines: an fsync costs ~0.4 ms, so waiting about that long
// lets concurrent writers share it, while a lone writer pays little.
const (
	DefaultMaxBatchSize  = 128
	DefaultMaxBatchDelay = 500 * time.Microsecond
)

// DB is linkd's store on a bbolt file. It implements linkd.Store and is safe
// for concurrent use.
type DB struct {
	bolt   *bbolt.DB
	sealer *sealer
	now    func() time.Time
}

var _ linkd.Store = (*DB)(nil)

// Open opens the database at path, creating the file (0600) and its
// directory (0700) if needed, and every bucket. It returns an EINVALID
// *linkd.Error for unusable Options.Keys, EUNAVAILABLE when another process
// holds the file past LockTimeout, and EINTERNAL for any other failure.
func Open(path string, opts Options) (*DB, error) {
	s, err := newSealer(opts.Keys)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, internal("open", err)
	}
	// NoSync stays false: every method is durable when it returns.
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "database file is locked by another process"), err)
	} else if err != nil {
		return nil, internal("open", err)
	}
	b.MaxBatchSize, b.MaxBatchDelay = DefaultMaxBatchSize, DefaultMaxBatchDelay
	if opts.MaxBatchSize > 0 {
		b.MaxBatchSize = opts.MaxBatchSize
	}
	if opts.MaxBatchDelay > 0 {
		b.MaxBatchDelay = opts.MaxBatchDelay
	} else if opts.MaxBatchDelay < 0 {
		b.MaxBatchDelay = 0
	}
	db := &DB{bolt: b, sealer: s, now: opts.Now}
	err = b.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, internal("create buckets", err)
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

// Check runs bbolt's consistency check over the whole file. It holds the
// write lock meanwhile, which makes it safe beside writers, and rolls back.
// It returns an EINTERNAL *linkd.Error carrying every inconsistency found.
func (db *DB) Check() error {
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return internal("check", err)
	}
	defer tx.Rollback()
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return internal("check", errors.Join(errs...))
	}
	return nil
}

// update runs fn in a write transaction, group-committed with concurrent
// writers (bbolt's Batch) and fsynced before it returns. fn may run more
// than once (bbolt retries a failed batch one function at a time), so it
// must depend only on tx. An *linkd.Error from fn passes through; any other
// failure becomes EINTERNAL.
func (db *DB) update(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	return wrap(op, db.bolt.Batch(fn))
}

// view runs fn in one read transaction, like update.
func (db *DB) view(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	return wrap(op, db.bolt.View(fn))
}

// wrap passes nil and *linkd.Error chains through and makes anything else
// EINTERNAL.
func wrap(op string, err error) error {
	var e *linkd.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return internal(op, err)
}

// internal returns an EINTERNAL error with a generic message that keeps
// cause in its chain for the logs. Causes here come from bbolt, the file
// system and protobuf, and never contain a token.
func internal(op string, cause error) error {
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
	if err := proto.Unmarshal(v, m); err != nil {
		return true, internal(fmt.Sprintf("decode %s value", bucket), err)
	}
	return true, nil
}

// put encodes m and stores it at key in bucket.
func put(tx *bbolt.Tx, bucket, key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
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
		if err := proto.Unmarshal(v, m); err != nil {
			return internal(fmt.Sprintf("decode %s value", bucket), err)
		}
		return fn(k, m)
	})
}
