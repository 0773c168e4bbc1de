package store

import (
	"context"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// RecordWebhook keeps a verified webhook, filling in received_at when
// unset, and, when status is set and the webhook names an Item linkd has,
// moves that Item to status with the webhook's error_code, in the same
// transaction. It returns the Item so changed, or nil when there is none to
// change (no status, no item_id, or an Item linkd does not have: Plaid's
// webhooks outlive linkd's records). It returns an EINTERNAL *linkd.Error
// when the store fails.
func (db *DB) RecordWebhook(ctx context.Context, w *storagev1.StoredWebhook, status linkdv1.ItemStatus) (*linkdv1.Item, error) {
	if w.GetReceivedAt() == nil {
		w = proto.CloneOf(w)
		w.ReceivedAt = timestamppb.New(db.now())
	}
	var changed *linkdv1.Item
	err := db.update(ctx, "record webhook", func(tx *bbolt.Tx) error {
		changed = nil // a batch may run this again
		if err := put(tx, bucketWebhooks, webhookKey(w.GetReceivedAt().AsTime(), w.GetBody()), w); err != nil {
			return err
		}
		if status == linkdv1.ItemStatus_ITEM_STATUS_UNSPECIFIED || w.GetItemId() == "" || len(w.GetItemId()) > maxIDLen {
			return nil
		}
		item := new(linkdv1.Item)
		err := setItemStatus(tx, w.GetItemId(), status, w.GetErrorCode(), w.GetReceivedAt(), item)
		if linkd.ErrorCode(err) == linkd.ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		changed = item
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// ListWebhooks returns every recorded webhook, oldest first, for operators
// and tests. It returns an EINTERNAL *linkd.Error when the store fails.
func (db *DB) ListWebhooks(ctx context.Context) ([]*storagev1.StoredWebhook, error) {
	var out []*storagev1.StoredWebhook
	err := db.view(ctx, "list webhooks", func(tx *bbolt.Tx) error {
		return each(tx, bucketWebhooks, func() *storagev1.StoredWebhook { return new(storagev1.StoredWebhook) }, func(_ []byte, w *storagev1.StoredWebhook) error {
			out = append(out, w)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
