package store

import "go.etcd.io/bbolt"

// BoltDB exposes the bbolt handle to the external tests.
func BoltDB(db *DB) *bbolt.DB { return db.bolt }
