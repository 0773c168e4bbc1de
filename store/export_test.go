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
