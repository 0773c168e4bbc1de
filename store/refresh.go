package store

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"
)

// DueItemRefreshes returns up to limit (MaxPageSize when zero or less)
// item_ids whose queued refresh is due at now, the longest due first, from
// the refresh_queue index. It returns an EINTERNAL *linkd.Error when the
// store fails.
func (db *DB) DueItemRefreshes(ctx context.Context, now time.Time, limit int) ([]string, error) {
	limit = pageLimit(limit)
	end := appendTime(nil, now.Add(1)) // due at now counts
	var ids []string
	err := db.view(ctx, "due item refreshes", func(tx *bbolt.Tx) error {
		ids = nil
		c := tx.Bucket(bucketRefreshQueue).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			if len(k) <= 8 {
				return internal("due item refreshes", errMalformedKey)
			}
			if string(k[:8]) >= string(end) {
				break
			}
			ids = append(ids, string(k[8:]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// DeferItemRefresh moves an Item's queued refresh to at; an Item with none
// queued is left alone. It returns an EINTERNAL *linkd.Error when the
// store fails.
func (db *DB) DeferItemRefresh(ctx context.Context, itemID string, at time.Time) error {
	if err := checkID("item_id", itemID); err != nil {
		return err
	}
	return db.update(ctx, "defer item refresh", func(tx *bbolt.Tx) error {
		if len(keysWithPrefix(tx.Bucket(bucketItemRefreshes).Cursor(), strPrefix(itemID))) == 0 {
			return nil
		}
		if err := unqueueRefresh(tx, itemID); err != nil {
			return err
		}
		return queueRefresh(tx, itemID, at)
	})
}

// queueRefresh queues an Item's refresh due at due, replacing none: the
// caller unqueues first when one may be queued.
func queueRefresh(tx *bbolt.Tx, itemID string, due time.Time) error {
	if err := tx.Bucket(bucketRefreshQueue).Put(timeKey(due, itemID), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketItemRefreshes).Put(itemRefreshKey(itemID, due), nil)
}

// unqueueRefresh removes every queued refresh of an Item.
func unqueueRefresh(tx *bbolt.Tx, itemID string) error {
	prefix := strPrefix(itemID)
	reverse := tx.Bucket(bucketItemRefreshes)
	for _, k := range keysWithPrefix(reverse.Cursor(), prefix) {
		if len(k) != len(prefix)+8 {
			return internal("unqueue refresh", errMalformedKey)
		}
		if err := tx.Bucket(bucketRefreshQueue).Delete(append(bytes.Clone(k[len(prefix):]), itemID...)); err != nil {
			return err
		}
		if err := reverse.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
