package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// RotateKeys re-seals every access token that is not sealed with the
// current master key, batchSize records per write transaction, and returns
// how many it re-sealed. Readers are never blocked: every record stays
// readable throughout, under its old key until its batch commits. It stops
// between batches when ctx ends, returning what it did and ctx's error
// (EUNAVAILABLE); a later call carries on. Other failures are EINTERNAL.
func (db *DB) RotateKeys(ctx context.Context, batchSize int) (int, error) {
	if batchSize <= 0 {
		batchSize = 100
	}
	total := 0
	var after []byte
	for {
		var ids [][]byte
		err := db.view(ctx, "find records to re-seal", func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketAccessTokens).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(ids) < batchSize; k, v = c.Next() {
				var sealed storagev1.SealedAccessToken
				if err := proto.Unmarshal(v, &sealed); err != nil {
					return internal("decode access_tokens value", err)
				}
				if sealed.GetKeyId() != db.sealer.current {
					ids = append(ids, bytes.Clone(k))
				}
				after = bytes.Clone(k)
			}
			if k == nil {
				after = nil
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(ids) > 0 {
			n := 0
			err = db.update(ctx, "re-seal access tokens", func(tx *bbolt.Tx) error {
				n = 0 // a batch may run this twice
				for _, id := range ids {
					var sealed storagev1.SealedAccessToken
					found, err := get(tx, bucketAccessTokens, id, &sealed)
					if err != nil {
						return err
					}
					if !found || sealed.GetKeyId() == db.sealer.current {
						continue // deleted or re-sealed meanwhile
					}
					token, err := db.sealer.unsealAccessToken(string(id), &sealed)
					if err != nil {
						return err
					}
					resealed, err := db.sealer.sealAccessToken(string(id), token)
					if err != nil {
						return err
					}
					if err := put(tx, bucketAccessTokens, id, resealed); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += n
		}
		if after == nil {
			return total, nil
		}
	}
}

