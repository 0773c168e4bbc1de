package store

import (
	"time"

	"go.etcd.io/bbolt"
)

// BoltDB exposes the bbolt handle to the external tests.
func BoltDB(db *DB) *bbolt.DB { return db.bolt }

// UseBoltBatch makes db commit through bbolt's Batch with delay, as the
// previous release did, for the benchmark that compares it with the
// committer.
func UseBoltBatch(db *DB, delay time.Duration) {
	db.bolt.MaxBatchDelay = delay
	db.commit.boltBatch = true
}

// WithMigration is opts with Open's migration run chunk Items (or
// refresh_queue entries) a transaction, its failAt-th transaction failing
// as a crash would end it (0: none), and its committed transactions
// counted into txs (nil: not counted).
func WithMigration(opts Options, chunk, failAt int, txs *int) Options {
	opts.migration = migration{chunk: chunk, failAt: failAt, txs: txs}
	return opts
}

// InitialMmapSize is how much of the file Open maps, for the test of an
// address-space limit.
func InitialMmapSize() int { return initialMmapSize() }
