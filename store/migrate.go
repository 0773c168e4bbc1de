package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// migrate creates every bucket and brings a file of an earlier layout to
// schemaVersion, in the caller's one transaction: a crash leaves the file
// as it was. A file newer than this code is refused, since this code
// would not keep its indexes.
func migrate(tx *bbolt.Tx, now time.Time) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	var v storagev1.SchemaVersion
	if _, err := get(tx, bucketMeta, keyVersion, &v); err != nil {
		return err
	}
	switch {
	case v.GetVersion() == schemaVersion:
		return nil
	case v.GetVersion() > schemaVersion:
		return linkd.Errorf(linkd.EINTERNAL, "database file has layout version %d; this linkd knows up to %d", v.GetVersion(), schemaVersion)
	}
	if v.GetVersion() < 1 {
		if err := migrateToV1(tx, now); err != nil {
			return fmt.Errorf("to version 1: %w", err)
		}
	}
	if err := migrateToV2(tx); err != nil {
		return fmt.Errorf("to version 2: %w", err)
	}
	return put(tx, bucketMeta, keyVersion, &storagev1.SchemaVersion{Version: schemaVersion})
}

// migrateToV1 builds the indexes version 1 added from the records (an
// empty file has none, and this is quick), and turns version 0's pending
// exchanges into released claims whose outcome is unknown: that is what
// they meant.
func migrateToV1(tx *bbolt.Tx, now time.Time) error {
	err := each(tx, bucketItems, newItem, func(_ []byte, item *linkdv1.Item) error {
		return putItemIndexes(tx, item)
	})
	if err != nil {
		return err
	}
	err = each(tx, bucketSessions, newSession, func(_ []byte, s *linkdv1.LinkSession) error {
		return tx.Bucket(bucketSessionStarts).Put(sessionStartKey(s), nil)
	})
	if err != nil {
		return err
	}
	old := tx.Bucket(bucketPendingExchanges)
	if old == nil {
		return nil
	}
	var keys [][]byte
	err = old.ForEach(func(k, v []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		var p storagev1.PendingExchange
		if _, err := get(tx, bucketPendingExchanges, k, &p); err != nil {
			return err
		}
		c := &storagev1.ExchangeClaim{
			ClientUserId: p.GetClientUserId(),
			ExpiresAt:    timestamppb.New(now),
			Attempts:     p.GetAttempts(),
			Unknown:      true,
			StartedAt:    p.GetStartedAt(),
		}
		if err := put(tx, bucketExchangeClaims, k, c); err != nil {
			return err
		}
	}
	return tx.DeleteBucket(bucketPendingExchanges)
}

// migrateToV2 folds each Item's sealed access token (access_tokens), its
// queued refresh (refresh_queue, whose reverse was item_refreshes) and its
// spent public tokens (item_public_tokens) into its record, and deletes
// the three buckets. refresh_queue stays as it is, but for entries no
// record can answer for: one naming a missing Item, or an Item's later
// entries (version 1 could hold several; the earliest is kept).
func migrateToV2(tx *bbolt.Tx) error {
	items := tx.Bucket(bucketItems)
	var ids [][]byte
	if err := items.ForEach(func(k, _ []byte) error {
		ids = append(ids, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	queue := tx.Bucket(bucketRefreshQueue)
	due := map[string]time.Time{}
	var stale [][]byte
	err := queue.ForEach(func(k, _ []byte) error {
		if len(k) <= 8 {
			return errMalformedKey
		}
		id := string(k[8:])
		if _, dup := due[id]; dup || items.Get(k[8:]) == nil {
			stale = append(stale, bytes.Clone(k))
		} else {
			due[id] = timeOf(k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := queue.Delete(k); err != nil {
			return err
		}
	}
	tokens, reverse := tx.Bucket(bucketV1AccessTokens), tx.Bucket(bucketV1ItemPublicTokens)
	for _, id := range ids {
		own := new(storagev1.StoredItem)
		if v := bucketGet(tokens, id); v != nil {
			own.SealedAccessToken = new(storagev1.SealedAccessToken)
			if err := proto.Unmarshal(v, own.SealedAccessToken); err != nil {
				return internal("decode access_tokens value", err)
			}
		}
		if t, ok := due[string(id)]; ok {
			own.RefreshDue = timestamppb.New(t)
		}
		if reverse != nil {
			prefix := strPrefix(string(id))
			for _, k := range keysWithPrefix(reverse.Cursor(), prefix) {
				if len(k) != len(prefix)+sha256.Size {
					return errMalformedKey
				}
				own.PublicTokenSums = append(own.PublicTokenSums, k[len(prefix):])
			}
		}
		if proto.Size(own) == 0 {
			continue // nothing to fold in
		}
		api, _, err := splitItem(items.Get(id))
		if err != nil {
			return err
		}
		if err := putItemRecord(tx, id, api, own); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketV1AccessTokens, bucketV1ItemRefreshes, bucketV1ItemPublicTokens} {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// bucketGet is b.Get(key), or nil when there is no bucket b.
func bucketGet(b *bbolt.Bucket, key []byte) []byte {
	if b == nil {
		return nil
	}
	return b.Get(key)
}
