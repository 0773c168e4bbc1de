package store

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// RecordWebhook keeps a verified webhook delivery once, filling in
// received_at when unset, and, when fn is set and the webhook names an Item
// linkd has, applies fn to that Item in the same transaction. It returns
// the Item when fn changed it, else nil (Plaid's webhooks outlive linkd's
// records). It returns an EINVALID *linkd.Error naming delivery_id when it
// is empty or too long, ECONFLICT when deliveryID was recorded before
// (nothing is then written), and fn's error unchanged.
func (db *DB) RecordWebhook(ctx context.Context, w *storagev1.StoredWebhook, deliveryID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	if err := checkID("delivery_id", deliveryID); err != nil {
		return nil, err
	}
	now := timestamppb.New(db.now())
	if w.GetReceivedAt() == nil {
		w = proto.CloneOf(w)
		w.ReceivedAt = now
	}
	var changed *linkdv1.Item
	err := db.update(ctx, "record webhook", func(tx *bbolt.Tx) error {
		changed = nil // a batch may run this again
		deliveries := tx.Bucket(bucketWebhookDeliveries)
		if deliveries.Get([]byte(deliveryID)) != nil {
			return linkd.Errorf(linkd.ECONFLICT, "webhook delivery was recorded already")
		}
		if err := put(tx, bucketWebhookDeliveries, []byte(deliveryID), &storagev1.WebhookDelivery{RecordedAt: now}); err != nil {
			return err
		}
		if err := put(tx, bucketWebhooks, webhookKey(w.GetReceivedAt().AsTime(), w.GetBody()), w); err != nil {
			return err
		}
		id := w.GetItemId()
		if fn == nil || id == "" || len(id) > maxIDLen || tx.Bucket(bucketItems).Get([]byte(id)) == nil {
			return nil
		}
		item, ok, err := updateItem(tx, id, fn)
		if ok {
			changed = item
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// ListWebhooks returns one page of recorded webhooks, oldest first, at most
// limit (MaxPageSize when zero or less), and the next page's token ("" after
// the last). It returns an EINVALID *linkd.Error naming page_token for a
// token it did not issue.
func (db *DB) ListWebhooks(ctx context.Context, pageToken string, limit int) ([]*storagev1.StoredWebhook, string, error) {
	var from []byte
	if pageToken != "" {
		k, err := decodePageToken(pageToken)
		if err != nil || len(k) < 8 {
			return nil, "", linkd.InvalidField("page_token", "page_token is not one this store issued")
		}
		from = k
	}
	limit = pageLimit(limit)
	var out []*storagev1.StoredWebhook
	var next string
	err := db.view(ctx, "list webhooks", func(tx *bbolt.Tx) error {
		out, next = nil, ""
		c := tx.Bucket(bucketWebhooks).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for ; k != nil; k, v = c.Next() {
			if len(out) == limit {
				next = encodePageToken(bytes.Clone(k))
				return nil
			}
			w := new(storagev1.StoredWebhook)
			if err := proto.Unmarshal(v, w); err != nil {
				return internal("decode webhooks value", err)
			}
			out = append(out, w)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}
