package store

import (
	"bytes"
	"context"
	"slices"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// pruneBatch is how many records one Prune write transaction deletes, so
// that writers (an exchanged Item waiting to be stored) never queue behind
// a long delete.
const pruneBatch = 500

// Prune deletes what is older than each cutoff of c (a zero cutoff keeps
// all of its kind), pruneBatch records per write transaction, and returns
// what it deleted. Sessions and webhooks are found through their time
// keys; delivery ids and link tokens by a read-only scan, since Prune runs
// in the background and not on a request path. It stops between batches
// when ctx ends, returning what it did and EUNAVAILABLE; other failures
// are EINTERNAL.
func (db *DB) Prune(ctx context.Context, c linkd.PruneCutoffs) (linkd.PruneResult, error) {
	var res linkd.PruneResult
	var err error
	if !c.Sessions.IsZero() {
		if res.Sessions, err = db.pruneOldest(ctx, "prune sessions", bucketSessionStarts, c.Sessions, deleteSession); err != nil {
			return res, err
		}
	}
	if !c.Webhooks.IsZero() {
		if res.Webhooks, err = db.pruneOldest(ctx, "prune webhooks", bucketWebhooks, c.Webhooks, deleteWebhook); err != nil {
			return res, err
		}
	}
	if !c.Deliveries.IsZero() {
		old := func(v []byte) (bool, error) {
			var d storagev1.WebhookDelivery
			if err := proto.Unmarshal(v, &d); err != nil {
				return false, internal("decode webhook_deliveries value", err)
			}
			return d.GetRecordedAt().AsTime().Before(c.Deliveries), nil
		}
		if res.Deliveries, err = db.pruneScan(ctx, "prune webhook deliveries", bucketWebhookDeliveries, old, nil); err != nil {
			return res, err
		}
	}
	if !c.LinkTokens.IsZero() {
		old := func(v []byte) (bool, error) {
			var t storagev1.StoredLinkToken
			if err := proto.Unmarshal(v, &t); err != nil {
				return false, internal("decode link_tokens value", err)
			}
			return t.GetExpiration() != nil && t.GetExpiration().AsTime().Before(c.LinkTokens), nil
		}
		// A dead token's renewal and hosted check go with it.
		also := func(tx *bbolt.Tx, k []byte) error {
			if err := unindexHostedCheck(tx, k); err != nil {
				return err
			}
			return tx.Bucket(bucketLinkTokenRenewals).Delete(k)
		}
		if res.LinkTokens, err = db.pruneScan(ctx, "prune link tokens", bucketLinkTokens, old, also); err != nil {
			return res, err
		}
	}
	return res, nil
}

// pruneOldest deletes, through del, the entries of a bucket whose keys
// start with be64(t) for t before cutoff, oldest first, a batch per
// transaction.
func (db *DB) pruneOldest(ctx context.Context, op string, bucket []byte, cutoff time.Time, del func(tx *bbolt.Tx, k []byte) error) (int, error) {
	end := appendTime(nil, cutoff)
	total := 0
	for {
		n := 0
		err := db.update(ctx, op, func(tx *bbolt.Tx) error {
			n = 0 // a batch may run this twice
			c := tx.Bucket(bucket).Cursor()
			var keys [][]byte
			for k, _ := c.First(); k != nil && len(keys) < pruneBatch && bytes.Compare(k, end) < 0; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := del(tx, k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// deleteSession deletes a session by its session_starts key.
func deleteSession(tx *bbolt.Tx, startKey []byte) error {
	if len(startKey) <= 8 {
		return internal("prune sessions", errMalformedKey)
	}
	if err := tx.Bucket(bucketSessions).Delete(startKey[8:]); err != nil {
		return err
	}
	return tx.Bucket(bucketSessionStarts).Delete(startKey)
}

// deleteWebhook deletes a webhook by its key.
func deleteWebhook(tx *bbolt.Tx, k []byte) error { return tx.Bucket(bucketWebhooks).Delete(k) }

// pruneScan finds the values of bucket that old reports in a read
// transaction, then deletes them (and, through also, what goes with them)
// a batch per write transaction, checking each again since the scan.
func (db *DB) pruneScan(ctx context.Context, op string, bucket []byte, old func(v []byte) (bool, error), also func(tx *bbolt.Tx, k []byte) error) (int, error) {
	var keys [][]byte
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		keys = nil
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			isOld, err := old(v)
			if isOld {
				keys = append(keys, bytes.Clone(k))
			}
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for chunk := range slices.Chunk(keys, pruneBatch) {
		n := 0
		err := db.update(ctx, op, func(tx *bbolt.Tx) error {
			n = 0 // a batch may run this twice
			b := tx.Bucket(bucket)
			for _, k := range chunk {
				v := b.Get(k)
				if v == nil {
					continue
				}
				if isOld, err := old(v); err != nil {
					return err
				} else if !isOld {
					continue
				}
				if err := b.Delete(k); err != nil {
					return err
				}
				if also != nil {
					if err := also(tx, k); err != nil {
						return err
					}
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
