package postgres

import (
	"context"
	"encoding/hex"

	"github.com/jackc/pgx/v5"

	"github.com/linkd/linkd"
)

var _ linkd.Importer = (*DB)(nil)

// Import writes records as they are, in one transaction, for linkd
// migrate: a record whose key is present already is left alone, so a
// migration can run again after a failure. Sealed tokens are copied
// sealed (the keyring must hold their keys), public tokens as their
// hashes. It returns EINVALID for an Item without its sealed token.
func (db *DB) Import(ctx context.Context, records []linkd.Record) error {
	return db.inTx(ctx, "import", func(tx pgx.Tx) error {
		for _, r := range records {
			if err := importRecord(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

func importRecord(ctx context.Context, tx pgx.Tx, r linkd.Record) error {
	switch {
	case r.LinkToken != nil:
		err := putLinkToken(ctx, tx, r.LinkToken)
		if linkd.ErrorCode(err) == linkd.ECONFLICT {
			return nil
		}
		return err
	case r.Session != nil:
		rec, err := marshal("import session", r.Session)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO link_sessions (link_session_id, started_ns, record) VALUES ($1, $2, $3)
			ON CONFLICT (link_session_id) DO NOTHING`,
			r.Session.GetLinkSessionId(), ns(linkd.SessionStart(r.Session)), rec)
		return err
	case r.Item != nil:
		return importItem(ctx, tx, r.Item)
	case r.Webhook != nil:
		w := r.Webhook.Webhook
		rec, err := marshal("import webhook", w)
		if err != nil {
			return err
		}
		// The source's key names the webhook, so copying it twice keeps one.
		_, err = tx.Exec(ctx, `INSERT INTO webhooks (received_ns, delivery_id, item_id, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (received_ns, delivery_id) DO NOTHING`,
			ns(w.GetReceivedAt().AsTime()), "import:"+hex.EncodeToString(r.Webhook.Key), w.GetItemId(), rec)
		return err
	}
	return nil
}

func importItem(ctx context.Context, tx pgx.Tx, r *linkd.ItemRecord) error {
	item := r.Item
	if r.Sealed == nil {
		return linkd.InvalidField("access_token", "item %s has no sealed access token to copy", item.GetItemId())
	}
	rec, err := marshal("import item", item)
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO items (item_id, client_user_id, institution_id, created_ns, record) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (item_id) DO NOTHING`,
		item.GetItemId(), item.GetClientUserId(), institutionIndex(item.GetInstitutionId()), ns(item.GetCreatedAt().AsTime()), rec)
	if err != nil || tag.RowsAffected() == 0 {
		return err // present already: its token and uses came with it
	}
	sealed, err := marshal("import sealed token", r.Sealed)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO access_tokens (item_id, key_id, record) VALUES ($1, $2, $3)`,
		item.GetItemId(), r.Sealed.GetKeyId(), sealed); err != nil {
		return err
	}
	for _, sum := range r.PublicTokenHashes {
		if _, err := tx.Exec(ctx, `INSERT INTO public_token_uses (public_token_sha256, item_id, client_user_id, exchanged_ns)
			VALUES ($1, $2, $3, $4) ON CONFLICT (public_token_sha256) DO NOTHING`,
			sum, item.GetItemId(), item.GetClientUserId(), ns(item.GetCreatedAt().AsTime())); err != nil {
			return err
		}
	}
	return nil
}

// CountRecords counts link tokens, sessions, Items and webhooks.
func (db *DB) CountRecords(ctx context.Context) (linkd.RecordCounts, error) {
	var c linkd.RecordCounts
	err := db.inTx(ctx, "count records", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM link_tokens), (SELECT count(*) FROM link_sessions),
			(SELECT count(*) FROM items), (SELECT count(*) FROM webhooks)`).
			Scan(&c.LinkTokens, &c.Sessions, &c.Items, &c.Webhooks)
	})
	return c, err
}
