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
	"github.com/linkd/linkd/internal/records"
)

// pruneBatch is how many records one Prune write transaction looks at
// (and so deletes at most), so that writers (an exchanged Item waiting to
// be stored) never queue behind a long delete.
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
		if res.Sessions, err = db.pruneSessions(ctx, c.Sessions); err != nil {
			return res, err
		}
	}
	if !c.Webhooks.IsZero() {
		// received_at is the store's clock (RecordWebhook), never Plaid's.
		end := appendTime(nil, c.Webhooks)
		if res.Webhooks, err = db.pruneRange(ctx, "prune webhooks", bucketWebhooks, nil, end, nil, deleteWebhook); err != nil {
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

// pruneSessions deletes the sessions last seen (linkd.SessionLastSeen)
// before cutoff. session_starts orders them by their device-clock start,
// so it looks at those that started before cutoff, keeping the ones seen
// since (a device clock behind), and at those that start after the
// store's clock (a device clock ahead), which no cutoff would reach. Both
// ranges hold few sessions that are kept, bounded by the bad clocks. A
// device time past 2262 or before 1678 wraps around in be64, into one
// range or the other.
func (db *DB) pruneSessions(ctx context.Context, cutoff time.Time) (int, error) {
	seenBefore := func(tx *bbolt.Tx, k []byte) (bool, error) {
		if len(k) <= 8 {
			return false, internal("prune sessions", errMalformedKey)
		}
		v := tx.Bucket(bucketSessions).Get(k[8:])
		if v == nil {
			return true, nil // an entry without its session holds nothing to keep
		}
		seen, err := records.SessionLastSeen(v)
		if err != nil {
			return false, internal("decode sessions value", err)
		}
		return seen.Before(cutoff), nil
	}
	end := appendTime(nil, cutoff)
	n, err := db.pruneRange(ctx, "prune sessions", bucketSessionStarts, nil, end, seenBefore, deleteSession)
	if err != nil {
		return n, err
	}
	future := appendTime(nil, db.now())
	if bytes.Compare(future, end) < 0 {
		future = end
	}
	more, err := db.pruneRange(ctx, "prune sessions", bucketSessionStarts, future, nil, seenBefore, deleteSession)
	return n + more, err
}

// pruneRange deletes, through del, the entries of a bucket with keys in
// [from, end) (nil: unbounded) that old reports (all when old is nil), in
// key order, looking at pruneBatch entries per transaction and resuming
// after the last one it looked at.
func (db *DB) pruneRange(ctx context.Context, op string, bucket, from, end []byte, old func(tx *bbolt.Tx, k []byte) (bool, error), del func(tx *bbolt.Tx, k []byte) error) (int, error) {
	total := 0
	for {
		n := 0
		var next []byte
		err := db.update(ctx, op, func(tx *bbolt.Tx) error {
			n, next = 0, nil // a batch may run this twice
			c := tx.Bucket(bucket).Cursor()
			var keys [][]byte
			seen := 0
			k, _ := c.First()
			if from != nil {
				k, _ = c.Seek(from)
			}
			for ; k != nil && (end == nil || bytes.Compare(k, end) < 0); k, _ = c.Next() {
				if seen == pruneBatch {
					next = bytes.Clone(k)
					break
				}
				seen++
				if old != nil {
					if isOld, err := old(tx, k); err != nil {
						return err
					} else if !isOld {
						continue
					}
				}
				keys = append(keys, bytes.Clone(k))
			}
			// Deleted after the walk: a bbolt cursor skips entries when
			// its bucket changes under it.
			for _, k := range keys {
				if err := del(tx, k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil || next == nil {
			return total, err
		}
		from = next
	}
}

// deleteSession deletes a session by its session_starts key (checked by
// pruneSessions).
func deleteSession(tx *bbolt.Tx, startKey []byte) error {
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
