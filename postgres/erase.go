package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// DeleteUserRecords erases a user whose Items are gone at Plaid, in one
// transaction: its Items (their access tokens, public token uses and
// queued refreshes go by cascade), the webhooks naming them, its Link
// sessions and any naming its Items, its link tokens (their renewals by
// cascade) and its exchange claims. Sessions keep their user only inside
// the record, so they are found by reading every session (erasure is
// rare). It returns what it deleted, an EINVALID *linkd.Error naming
// client_user_id, and EPRECONDITION (deleting nothing) when the user has an
// Item not in removedItemIDs.
func (db *DB) DeleteUserRecords(ctx context.Context, clientUserID string, removedItemIDs []string) (linkd.RecordCounts, error) {
	if err := checkID("client_user_id", clientUserID); err != nil {
		return linkd.RecordCounts{}, err
	}
	removed := map[string]bool{}
	for _, id := range removedItemIDs {
		removed[id] = true
	}
	var counts linkd.RecordCounts
	err := db.inTx(ctx, "delete user records", func(tx pgx.Tx) error {
		counts = linkd.RecordCounts{}
		rows, err := tx.Query(ctx, `SELECT item_id FROM items WHERE client_user_id = $1 FOR UPDATE`, clientUserID)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		items := map[string]bool{}
		for _, id := range ids {
			if !removed[id] {
				return linkd.Errorf(linkd.EPRECONDITION, "the user has an Item not removed at Plaid (linked meanwhile): remove it first")
			}
			items[id] = true
		}
		tag, err := tx.Exec(ctx, `DELETE FROM items WHERE item_id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		counts.Items = int(tag.RowsAffected())
		if tag, err = tx.Exec(ctx, `DELETE FROM webhooks WHERE item_id = ANY($1)`, ids); err != nil {
			return err
		}
		counts.Webhooks = int(tag.RowsAffected())

		rows, err = tx.Query(ctx, `SELECT link_session_id, record FROM link_sessions`)
		if err != nil {
			return err
		}
		var doomed []string
		var id string
		var record []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &record}, func() error {
			var s linkdv1.LinkSession
			if err := unmarshal("delete user records", record, &s); err != nil {
				return err
			}
			if s.GetClientUserId() == clientUserID || items[s.GetItemId()] {
				doomed = append(doomed, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if tag, err = tx.Exec(ctx, `DELETE FROM link_sessions WHERE link_session_id = ANY($1)`, doomed); err != nil {
			return err
		}
		counts.Sessions = int(tag.RowsAffected())
		if tag, err = tx.Exec(ctx, `DELETE FROM link_tokens WHERE client_user_id = $1`, clientUserID); err != nil {
			return err
		}
		counts.LinkTokens = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `DELETE FROM exchange_claims WHERE client_user_id = $1`, clientUserID)
		return err
	})
	if err != nil {
		return linkd.RecordCounts{}, err
	}
	return counts, nil
}
