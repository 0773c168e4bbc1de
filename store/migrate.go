package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// migrateChunk is how many Items (or refresh_queue entries) one
// transaction of the version 2 migration rewrites: a bbolt transaction
// keeps every page it dirties in memory until it commits, so one
// transaction over a million Items needed gigabytes.
const migrateChunk = 10_000

// migration holds what tests change of Open's migration.
type migration struct {
	// chunk replaces migrateChunk when positive.
	chunk int
	// failAt, when positive, makes the migration's failAt-th transaction
	// fail before it commits, as a crash would end it.
	failAt int
	// txs, when set, counts the migration's transactions that committed.
	txs *int
}

// errMigrationHook is the failure migration.failAt injects.
var errMigrationHook = errors.New("migration interrupted (test hook)")

// migrate creates every bucket and brings a file of an earlier layout to
// schemaVersion, a transaction at a time (migrateStep): a crash leaves
// every record readable by the layout its file's version names, and the
// next Open goes on where it stopped. A file newer than this code is
// refused, since this code would not keep its indexes.
func migrate(b *bbolt.DB, now time.Time, m migration) error {
	if m.chunk <= 0 {
		m.chunk = migrateChunk
	}
	for n := 1; ; n++ {
		done := false
		err := updateSafely(b, func(tx *bbolt.Tx) error {
			var err error
			if done, err = migrateStep(tx, now, m.chunk); err != nil {
				return err
			}
			if n == m.failAt {
				return errMigrationHook
			}
			return nil
		})
		if err != nil {
			return err
		}
		if m.txs != nil {
			*m.txs++
		}
		if done {
			return nil
		}
	}
}

// migrateStep runs one transaction of the migration and reports whether
// the file is at schemaVersion now.
func migrateStep(tx *bbolt.Tx, now time.Time, chunk int) (bool, error) {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return false, err
		}
	}
	var v storagev1.SchemaVersion
	if _, err := get(tx, bucketMeta, keyVersion, &v); err != nil {
		return false, err
	}
	switch {
	case v.GetVersion() == schemaVersion:
		return true, nil
	case v.GetVersion() > schemaVersion:
		return false, linkd.Errorf(linkd.EINTERNAL, "database file has layout version %d; this linkd knows up to %d", v.GetVersion(), schemaVersion)
	case v.GetVersion() < 1:
		// Version 0 files predate the large ones: one transaction.
		if err := migrateToV1(tx, now); err != nil {
			return false, fmt.Errorf("to version 1: %w", err)
		}
		return false, put(tx, bucketMeta, keyVersion, &storagev1.SchemaVersion{Version: 1})
	}
	done, err := migrateToV2(tx, chunk)
	if err != nil || !done {
		return false, wrapV2(err)
	}
	if err := tx.Bucket(bucketMeta).Delete(keyMigration); err != nil {
		return false, err
	}
	return true, put(tx, bucketMeta, keyVersion, &storagev1.SchemaVersion{Version: schemaVersion})
}

// wrapV2 names the version 2 migration in err.
func wrapV2(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("to version 2: %w", err)
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
//
// It runs chunk Items (step 1), then chunk refresh_queue entries (step
// 2), per transaction, from the cursor in the meta bucket, and reports
// whether it finished: then the three buckets are gone and the caller
// writes version 2 in the same transaction, so that no Open ever takes a
// half-migrated file for version 2. Until then the version 1 buckets are
// what every record is made from, and a step recomputes each record from
// them, so that a chunk run again writes nothing new: a record whose
// store fields already are what the buckets give is not written at all.
// A chunk and the cursor after it commit together, so a chunk runs again
// only when the migration starts over: when the cursor was written by a
// transaction other than the one before this one (an earlier linkd
// opened the version 1 file after a crash, and may have changed it).
func migrateToV2(tx *bbolt.Tx, chunk int) (bool, error) {
	var c storagev1.MigrationCursor
	found, err := get(tx, bucketMeta, keyMigration, &c)
	if err != nil {
		return false, err
	}
	if !found || c.GetToVersion() != 2 || c.GetTxid() != uint64(tx.ID())-1 {
		c = storagev1.MigrationCursor{ToVersion: 2, Step: 1}
	}
	var (
		after []byte
		more  bool
	)
	switch c.GetStep() {
	case 1:
		after, more, err = foldItemsV1(tx, c.GetAfter(), chunk)
		if err == nil && !more {
			c.Step, after, more = 2, nil, true
		}
	case 2:
		after, more, err = checkRefreshQueueV2(tx, c.GetAfter(), chunk)
	default:
		return false, internal("migrate", fmt.Errorf("migration cursor at step %d", c.GetStep()))
	}
	if err != nil {
		return false, err
	}
	if more {
		c.After, c.Txid = after, uint64(tx.ID())
		return false, put(tx, bucketMeta, keyMigration, &c)
	}
	for _, name := range [][]byte{bucketV1AccessTokens, bucketV1ItemRefreshes, bucketV1ItemPublicTokens} {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return false, err
		}
	}
	return true, nil
}

// foldItemsV1 is step 1 of migrateToV2: it writes the store fields of up
// to chunk Items after the key after, and returns the last one's key and
// whether any Item may follow it.
func foldItemsV1(tx *bbolt.Tx, after []byte, chunk int) ([]byte, bool, error) {
	items := tx.Bucket(bucketItems)
	tokens := tx.Bucket(bucketV1AccessTokens)
	refreshes, reverse := tx.Bucket(bucketV1ItemRefreshes), tx.Bucket(bucketV1ItemPublicTokens)
	queue := tx.Bucket(bucketRefreshQueue)
	ids := keysAfter(items.Cursor(), after, chunk)
	for _, id := range ids {
		own := new(storagev1.StoredItem)
		if v := bucketGet(tokens, id); v != nil {
			own.SealedAccessToken = new(storagev1.SealedAccessToken)
			if err := proto.Unmarshal(v, own.SealedAccessToken); err != nil {
				return nil, false, internal("decode access_tokens value", err)
			}
		}
		prefix := strPrefix(string(id))
		if refreshes != nil {
			// The earliest queued refresh that refresh_queue holds; step
			// 2 drops the rest.
			for _, k := range keysWithPrefix(refreshes.Cursor(), prefix) {
				if len(k) != len(prefix)+8 {
					return nil, false, errMalformedKey
				}
				if due := timeOf(k[len(prefix):]); queue.Get(timeKey(due, string(id))) != nil {
					own.RefreshDue = timestamppb.New(due)
					break
				}
			}
		}
		if reverse != nil {
			for _, k := range keysWithPrefix(reverse.Cursor(), prefix) {
				if len(k) != len(prefix)+sha256.Size {
					return nil, false, errMalformedKey
				}
				own.PublicTokenSums = append(own.PublicTokenSums, k[len(prefix):])
			}
		}
		v := items.Get(id)
		// The new value in one allocation: the API fields, then own.
		api, had, err := scanItem(v, make([]byte, 0, len(v)+proto.Size(own)))
		if err != nil {
			return nil, false, err
		}
		if v, err = appendOwn(api, own); err != nil {
			return nil, false, err
		}
		if bytes.Equal(had, v[len(api):]) {
			continue // folded already, or nothing to fold
		}
		if err := items.Put(id, v); err != nil {
			return nil, false, fmt.Errorf("put items value: %w", err)
		}
	}
	if len(ids) < chunk {
		return nil, false, nil
	}
	return ids[len(ids)-1], true, nil
}

// checkRefreshQueueV2 is step 2 of migrateToV2: of up to chunk
// refresh_queue entries after the key after, it deletes each that names
// no Item or not its record's refresh_due, but records an Item's earliest
// entry when step 1 found none for it (item_refreshes lacked it). It
// returns the last entry's key and whether any entry may follow it.
func checkRefreshQueueV2(tx *bbolt.Tx, after []byte, chunk int) ([]byte, bool, error) {
	queue := tx.Bucket(bucketRefreshQueue)
	keys := keysAfter(queue.Cursor(), after, chunk)
	for _, k := range keys {
		if len(k) <= 8 {
			return nil, false, errMalformedKey
		}
		var own *storagev1.StoredItem
		v := tx.Bucket(bucketItems).Get(k[8:])
		if v != nil {
			var err error
			if own, err = ownOf(v); err != nil {
				return nil, false, err
			}
		}
		due := timeOf(k)
		switch {
		case v != nil && own.GetRefreshDue() == nil:
			api, _, err := splitItem(v)
			if err != nil {
				return nil, false, err
			}
			own.RefreshDue = timestamppb.New(due)
			if err := putItemRecord(tx, k[8:], api, own); err != nil {
				return nil, false, err
			}
		case v != nil && own.GetRefreshDue().AsTime().Equal(due):
		default:
			if err := queue.Delete(k); err != nil {
				return nil, false, err
			}
		}
	}
	if len(keys) < chunk {
		return nil, false, nil
	}
	return keys[len(keys)-1], true, nil
}

// keysAfter returns copies of up to n keys after the key after (from the
// first when after is empty), in order. A migration step collects its
// chunk's keys first: writing to a bucket while a cursor walks it moves
// its pages under the cursor.
func keysAfter(c *bbolt.Cursor, after []byte, n int) [][]byte {
	var keys [][]byte
	k, _ := c.Seek(after)
	if k != nil && len(after) > 0 && bytes.Equal(k, after) {
		k, _ = c.Next()
	}
	for ; k != nil && len(keys) < n; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

// bucketGet is b.Get(key), or nil when there is no bucket b.
func bucketGet(b *bbolt.Bucket, key []byte) []byte {
	if b == nil {
		return nil
	}
	return b.Get(key)
}
