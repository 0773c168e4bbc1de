package store

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
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
// queued (or none at all) is left alone. It returns an EINTERNAL
// *linkd.Error when the store fails.
func (db *DB) DeferItemRefresh(ctx context.Context, itemID string, at time.Time) error {
	if err := checkID("item_id", itemID); err != nil {
		return err
	}
	return db.update(ctx, "defer item refresh", func(tx *bbolt.Tx) error {
		id := []byte(itemID)
		api, own, found, err := itemRecord(tx, id)
		if err != nil || !found {
			return err
		}
		if queued, err := unqueueRefresh(tx, itemID, own); err != nil || !queued {
			return err
		}
		if err := tx.Bucket(bucketRefreshQueue).Put(timeKey(at, itemID), nil); err != nil {
			return err
		}
		own.RefreshDue = timestamppb.New(at)
		return putItemRecord(tx, id, api, own)
	})
}

// unqueueRefresh removes the Item's queued refresh that its record's
// store fields own name from refresh_queue, and clears it in own; it
// reports whether one was queued.
func unqueueRefresh(tx *bbolt.Tx, itemID string, own *storagev1.StoredItem) (bool, error) {
	due := own.GetRefreshDue()
	if due == nil {
		return false, nil
	}
	if err := tx.Bucket(bucketRefreshQueue).Delete(timeKey(due.AsTime(), itemID)); err != nil {
		return false, err
	}
	own.RefreshDue = nil
	return true, nil
}
