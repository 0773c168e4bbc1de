package store

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"
)

// ResealAccessTokens re-seals up to batch (100 when zero or less) access
// tokens not sealed with the Sealer's current key, in one write
// transaction after a read-only scan finds them, and returns how many it
// re-sealed; 0 means none is left. Readers are never blocked: every record
// stays readable under its old key until the batch commits. A record
// deleted or re-sealed since the scan is skipped, so several callers may
// run it at once. It returns EINTERNAL when a token does not unseal.
func (db *DB) ResealAccessTokens(ctx context.Context, batch int) (int, error) {
	if batch <= 0 {
		batch = 100
	}
	for {
		n, found, err := db.resealBatch(ctx, batch)
		// A batch whose records another handle re-sealed meanwhile does
		// not mean none is left: look again.
		if err != nil || n > 0 || !found {
			return n, err
		}
	}
}

// resealBatch re-seals up to batch tokens and reports whether it found
// any to re-seal.
func (db *DB) resealBatch(ctx context.Context, batch int) (int, bool, error) {
	current := db.sealer.CurrentKeyID()
	var ids [][]byte
	err := db.view(ctx, "find records to re-seal", func(tx *bbolt.Tx) error {
		ids = nil
		return tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			if len(ids) == batch {
				return nil
			}
			own, err := ownOf(v)
			if err != nil {
				return err
			}
			if sealed := own.GetSealedAccessToken(); sealed != nil && sealed.GetKeyId() != current {
				ids = append(ids, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil || len(ids) == 0 {
		return 0, false, err
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
		return 0, true, err
	}
	return n, true, nil
}

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
