package store

import (
	"bytes"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
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
	if err := migrateToV1(tx, now); err != nil {
		return fmt.Errorf("to version 1: %w", err)
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
