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

// AddKeyToFile adds a new random master key to the key file at path, as the
// current key, keeping the old ones so that records sealed with them stay
// readable; the file is replaced atomically. It returns the new keyring, an
// EINVALID *linkd.Error when the file is missing, open to others or does
// not parse, and an EINTERNAL one when it cannot be written.
func AddKeyToFile(path string) (Keyring, error) {
	old, err := loadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Keyring{}, fmt.Errorf("no master key file at %s: %w", path, err)
	} else if err != nil {
		return Keyring{}, err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return Keyring{}, internal("read key file", err)
	}
	defer clear(text)
	line, err := newKeyLine()
	if err != nil {
		return Keyring{}, internal("new key", err)
	}
	// The file has LINKD_MASTER_KEYS's format: the new key goes last, as
	// the current one.
	text = append(bytes.TrimSpace(text), ',')
	text = append(text, line...)
	if err := installKeyFile(path, text, os.Rename); err != nil {
		return Keyring{}, internal("write key file", err)
	}
	k, err := loadKeyFile(path)
	if err == nil && k.Current == old.Current {
		err = internal("add key", errors.New("the new key is not current after writing"))
	}
	return k, err
}
