package store

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"
)

// ResealAccessTokens re-seals the access tokens not sealed with the
// Sealer's current key of up to batch (100 when zero or less) Items after
// the item_id after, in key order, in one write transaction after a
// read-only scan finds them, and returns how many it re-sealed and the
// item_id the next batch starts after: "" once the scan reached the last
// Item. A batch scans from after, not from the first Item, so a pass costs
// one read of the bucket, not one per batch; a scan that finds nothing to
// re-seal in resealScanLimit Items stops there and returns 0 and where it
// stopped, so that no read transaction spans a whole large file. Readers
// are never blocked: every record stays readable under its old key until
// the batch commits. A record deleted or re-sealed since the scan is
// skipped, so several callers may run it at once. It returns EINTERNAL
// when a token does not unseal.
func (db *DB) ResealAccessTokens(ctx context.Context, after string, batch int) (int, string, error) {
	if batch <= 0 {
		batch = 100
	}
	current := db.sealer.CurrentKeyID()
	var (
		ids  [][]byte
		next string
	)
	err := db.view(ctx, "find records to re-seal", func(tx *bbolt.Tx) error {
		ids, next = nil, ""
		c := tx.Bucket(bucketItems).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = c.Next()
		}
		for scanned := 1; k != nil; k, v = c.Next() {
			own, err := ownOf(v)
			if err != nil {
				return err
			}
			if sealed := own.GetSealedAccessToken(); sealed != nil && sealed.GetKeyId() != current {
				ids = append(ids, bytes.Clone(k))
			}
			if len(ids) == batch || scanned == resealScanLimit {
				next = string(k)
				return nil
			}
			scanned++
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return 0, next, err
	}
	n := 0
	err = db.update(ctx, "re-seal access tokens", func(tx *bbolt.Tx) error {
		n = 0 // a batch may run this twice
		for _, id := range ids {
			api, own, found, err := itemRecord(tx, id)
			if err != nil {
				return err
			}
			sealed := own.GetSealedAccessToken()
			if !found || sealed == nil || sealed.GetKeyId() == current {
				continue // deleted or re-sealed meanwhile
			}
			token, err := db.sealer.UnsealAccessToken(string(id), sealed)
			if err != nil {
				return err
			}
			resealed, err := db.sealer.SealAccessToken(string(id), token)
			if err != nil {
				return err
			}
			own.SealedAccessToken = resealed
			if err := putItemRecord(tx, id, api, own); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return n, next, nil
}

// resealScanLimit bounds how many Items one ResealAccessTokens scan reads.
const resealScanLimit = 10_000

// SealedKeyIDs returns the ids of the master keys that sealed the stored
// access tokens, each with one item_id it sealed. It scans the Items:
// it runs once at start. It returns an EINTERNAL *linkd.Error when the
// store fails.
func (db *DB) SealedKeyIDs(ctx context.Context) (map[string]string, error) {
	ids := map[string]string{}
	err := db.view(ctx, "sealed key ids", func(tx *bbolt.Tx) error {
		clear(ids)
		return tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			own, err := ownOf(v)
			if err != nil {
				return err
			}
			sealed := own.GetSealedAccessToken()
			if sealed == nil {
				return nil
			}
			if _, ok := ids[sealed.GetKeyId()]; !ok {
				ids[sealed.GetKeyId()] = string(k)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}
