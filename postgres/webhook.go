package postgres

import (
	"context"
	"math"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// RecordWebhook keeps a verified webhook delivery once (received_at filled
// in when unset) and, when it names a stored Item and fn is not nil,
// applies fn to that Item in the same transaction. It returns the Item
// when fn changed it, else nil; ECONFLICT, changing nothing, when
// deliveryID was recorded before; EINVALID naming delivery_id; and fn's
// error unchanged, recording nothing.
func (db *DB) RecordWebhook(ctx context.Context, w *storagev1.StoredWebhook, deliveryID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	if err := checkID("delivery_id", deliveryID); err != nil {
		return nil, err
	}
	now := db.now()
	if w.GetReceivedAt() == nil {
		w = proto.CloneOf(w)
		w.ReceivedAt = timestamppb.New(now)
	}
	rec, err := marshal("record webhook", w)
	if err != nil {
		return nil, err
	}
	var out *linkdv1.Item
	err = db.inTx(ctx, "record webhook", func(tx pgx.Tx) error {
		out = nil
		tag, err := tx.Exec(ctx, `
			INSERT INTO webhook_deliveries (delivery_id, recorded_ns) VALUES ($1, $2)
			ON CONFLICT (delivery_id) DO NOTHING`, deliveryID, ns(now))
		if err != nil {
			return err
		} else if tag.RowsAffected() == 0 {
			return linkd.Errorf(linkd.ECONFLICT, "webhook delivery was recorded already")
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO webhooks (received_ns, delivery_id, item_id, record) VALUES ($1, $2, $3, $4)`,
			ns(w.GetReceivedAt().AsTime()), deliveryID, w.GetItemId(), rec); err != nil {
			return err
		}
		itemID := w.GetItemId()
		if fn == nil || itemID == "" || len(itemID) > maxIDLen {
			return nil
		}
		item, err := getItem(ctx, tx, `SELECT record FROM items WHERE item_id = $1 FOR UPDATE`, itemID)
		if linkd.ErrorCode(err) == linkd.ENOTFOUND {
			return nil // Plaid's webhooks outlive linkd's Items
		} else if err != nil {
			return err
		}
		if changed, err := call(fn, item); err != nil || !changed {
			return err
		}
		if err := writeItem(ctx, tx, itemID, item); err != nil {
			return err
		}
		out = item
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListWebhooks returns one page of recorded webhooks, oldest first (by
// received_at, then delivery id), and the next page's token. It returns
// EINVALID naming page_token for a token it did not make.
func (db *DB) ListWebhooks(ctx context.Context, pageToken string, limit int) ([]*storagev1.StoredWebhook, string, error) {
	at, id, ok, err := decodePageToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		at, id = math.MinInt64, ""
	}
	limit = pageLimit(limit)
	rows, err := db.pool.Query(ctx, `
		SELECT received_ns, delivery_id, record FROM webhooks
		WHERE (received_ns, delivery_id) > ($1, $2)
		ORDER BY received_ns, delivery_id LIMIT $3`, at, id, limit+1)
	if err != nil {
		return nil, "", wrap("list webhooks", err)
	}
	return scanPage(rows, limit, "list webhooks", func() *storagev1.StoredWebhook { return new(storagev1.StoredWebhook) })
}
