package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// PutItem stores a new Item (created_at filled in when unset), its access
// token sealed by the Sealer, the use of its public token (by SHA-256, the
// claim on it removed), its queued refresh, and its Link session's item_id
// (unless the session names another stored Item) with n.Session applied
// (creating the session only when n.Session is set), in one transaction.
// It returns EINVALID naming item_id, client_user_id, link_session_id or
// access_token, ECONFLICT when the item_id exists or the public token was
// spent on another Item, and n.Session's error unchanged, storing nothing.
func (db *DB) PutItem(ctx context.Context, n linkd.NewItem) (*linkdv1.Item, error) {
	item := n.Item
	if err := checkID("item_id", item.GetItemId()); err != nil {
		return nil, err
	}
	if err := checkID("client_user_id", item.GetClientUserId()); err != nil {
		return nil, err
	}
	if sid := n.SessionID(); sid != "" {
		if err := checkID("link_session_id", sid); err != nil {
			return nil, err
		}
	}
	if n.PublicToken != "" {
		if err := checkID("public_token", n.PublicToken); err != nil {
			return nil, err
		}
	}
	if err := checkInstitutionID(item.GetInstitutionId()); err != nil {
		return nil, err
	}
	if n.AccessToken.IsZero() {
		return nil, linkd.InvalidField("access_token", "access_token is required")
	}
	now := db.now()
	item = proto.CloneOf(item)
	if item.GetCreatedAt() == nil {
		item.CreatedAt = timestamppb.New(now)
	}
	// Seal and encode before the transaction: they need none.
	sealed, err := db.sealer.SealAccessToken(item.GetItemId(), n.AccessToken)
	if err != nil {
		return nil, err
	}
	sealedRec, err := marshal("put item", sealed)
	if err != nil {
		return nil, err
	}
	rec, err := marshal("put item", item)
	if err != nil {
		return nil, err
	}
	err = db.inTx(ctx, "put item", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO items (item_id, client_user_id, institution_id, created_ns, record) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (item_id) DO NOTHING`,
			item.GetItemId(), item.GetClientUserId(), item.GetInstitutionId(), ns(item.GetCreatedAt().AsTime()), rec)
		if err != nil {
			return err
		} else if tag.RowsAffected() == 0 {
			return linkd.Errorf(linkd.ECONFLICT, "item already exists")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO access_tokens (item_id, key_id, record) VALUES ($1, $2, $3)`,
			item.GetItemId(), sealed.GetKeyId(), sealedRec); err != nil {
			return err
		}
		if n.PublicToken != "" {
			sum := publicTokenSum(n.PublicToken)
			tag, err := tx.Exec(ctx, `
				INSERT INTO public_token_uses (public_token_sha256, item_id, client_user_id, exchanged_ns) VALUES ($1, $2, $3, $4)
				ON CONFLICT (public_token_sha256) DO NOTHING`,
				sum, item.GetItemId(), item.GetClientUserId(), ns(now))
			if err != nil {
				return err
			} else if tag.RowsAffected() == 0 {
				return linkd.Errorf(linkd.ECONFLICT, "public token was already exchanged")
			}
			if _, err := tx.Exec(ctx, `DELETE FROM exchange_claims WHERE public_token_sha256 = $1`, sum); err != nil {
				return err
			}
		}
		if !n.RefreshAt.IsZero() {
			if _, err := tx.Exec(ctx, `INSERT INTO item_refreshes (item_id, due_ns) VALUES ($1, $2)`,
				item.GetItemId(), ns(n.RefreshAt)); err != nil {
				return err
			}
		}
		if sid := n.SessionID(); sid != "" {
			return linkSession(ctx, tx, sid, item.GetItemId(), n.Session)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

// linkSession sets a session's item_id to itemID, unless it names another
// stored Item, and applies fn, in tx. Without fn a session that does not
// exist is not created. fn's error comes back as an update function's, to
// fail the whole PutItem.
func linkSession(ctx context.Context, tx pgx.Tx, sessionID, itemID string, fn func(*linkdv1.LinkSession) (bool, error)) error {
	if fn == nil {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM link_sessions WHERE link_session_id = $1`, sessionID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
	}
	setItem := func(s *linkdv1.LinkSession) (bool, error) {
		switch old := s.GetItemId(); {
		case old == itemID:
			return false, nil
		case old != "":
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM items WHERE item_id = $1`, old).Scan(&one)
			if err == nil {
				return false, nil // the session keeps the Item it created
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return false, err
			}
		}
		s.ItemId = itemID
		return true, nil
	}
	// An Item Plaid billed is never refused: its session counts past the bound.
	_, fnErr, err := updateLinkSession(ctx, tx, sessionID, setItem, fn, time.Time{}, false)
	if err != nil {
		return err
	}
	if fnErr != nil {
		return &fnError{fnErr}
	}
	return nil
}

// GetItem returns an Item, or ENOTFOUND; EINVALID naming item_id for a
// bad id.
func (db *DB) GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error) {
	if err := checkID("item_id", itemID); err != nil {
		return nil, err
	}
	item, err := getItem(ctx, db.pool, `SELECT record FROM items WHERE item_id = $1`, itemID)
	return item, wrap("get item", err)
}

// getItem returns the one Item query selects, or ENOTFOUND.
func getItem(ctx context.Context, q querier, query string, args ...any) (*linkdv1.Item, error) {
	return getRecord(ctx, q, "item", func() *linkdv1.Item { return new(linkdv1.Item) }, query, args...)
}

// getRecord returns the one record (its "record" column) query selects,
// decoded into a fresh message of newMsg, or ENOTFOUND naming what.
func getRecord[M proto.Message](ctx context.Context, q querier, what string, newMsg func() M, query string, args ...any) (M, error) {
	var zero M
	var rec []byte
	if err := q.QueryRow(ctx, query, args...).Scan(&rec); errors.Is(err, pgx.ErrNoRows) {
		return zero, linkd.Errorf(linkd.ENOTFOUND, "%s not found", what)
	} else if err != nil {
		return zero, err
	}
	m := newMsg()
	if err := unmarshal(what, rec, m); err != nil {
		return zero, err
	}
	return m, nil
}

// ListItems returns a user's Items, oldest first (by created_at, then
// item_id); none is an empty list. EINVALID naming client_user_id for a
// bad id.
func (db *DB) ListItems(ctx context.Context, clientUserID string) ([]*linkdv1.Item, error) {
	if err := checkID("client_user_id", clientUserID); err != nil {
		return nil, err
	}
	items, err := listItems(ctx, db.pool, `
		SELECT record FROM items WHERE client_user_id = $1 ORDER BY created_ns, item_id`, clientUserID)
	return items, wrap("list items", err)
}

// ItemsAtInstitution returns every user's Items at an institution, oldest
// first, from the institution index; none is an empty list, and so is
// every answer for "", which names no institution (as in the bbolt store,
// which does not index Items without one).
func (db *DB) ItemsAtInstitution(ctx context.Context, institutionID string) ([]*linkdv1.Item, error) {
	if institutionID == "" || checkInstitutionID(institutionID) != nil {
		return nil, nil // no stored Item has one
	}
	items, err := listItems(ctx, db.pool, `
		SELECT record FROM items WHERE institution_id = $1 ORDER BY created_ns, item_id`, institutionID)
	return items, wrap("items at institution", err)
}

func listItems(ctx context.Context, q querier, query string, args ...any) ([]*linkdv1.Item, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*linkdv1.Item, error) {
		var rec []byte
		if err := row.Scan(&rec); err != nil {
			return nil, err
		}
		item := new(linkdv1.Item)
		return item, unmarshal("item", rec, item)
	})
}

// UpdateItem applies fn to an Item, with its row locked, and stores it
// when fn reports a change. It returns the Item as stored after the call
// and fn's error unchanged; ENOTFOUND when there is no such Item.
func (db *DB) UpdateItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	return db.updateItem(ctx, "update item", itemID, fn, false)
}

// UpdateRefreshedItem is UpdateItem that also removes the Item's queued
// refresh, in the same transaction, unless fn fails.
func (db *DB) UpdateRefreshedItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	return db.updateItem(ctx, "update refreshed item", itemID, fn, true)
}

func (db *DB) updateItem(ctx context.Context, op, itemID string, fn func(item *linkdv1.Item) (bool, error), refreshed bool) (*linkdv1.Item, error) {
	if err := checkID("item_id", itemID); err != nil {
		return nil, err
	}
	var out *linkdv1.Item
	err := db.inTx(ctx, op, func(tx pgx.Tx) error {
		stored, err := getItem(ctx, tx, `SELECT record FROM items WHERE item_id = $1 FOR UPDATE`, itemID)
		if err != nil {
			return err
		}
		out = stored
		if refreshed {
			if _, err := tx.Exec(ctx, `DELETE FROM item_refreshes WHERE item_id = $1`, itemID); err != nil {
				return err
			}
		}
		if fn == nil {
			return nil
		}
		item := proto.CloneOf(stored)
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

// writeItem replaces a stored Item and its index columns.
func writeItem(ctx context.Context, tx pgx.Tx, itemID string, item *linkdv1.Item) error {
	if item.GetItemId() != itemID {
		return internal("update item", errors.New("an update function changed item_id"))
	}
	rec, err := marshal("update item", item)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		UPDATE items SET client_user_id = $2, institution_id = $3, created_ns = $4, record = $5 WHERE item_id = $1`,
		itemID, item.GetClientUserId(), institutionIndex(item.GetInstitutionId()), ns(item.GetCreatedAt().AsTime()), rec)
	return err
}

// AccessToken unseals and returns an Item's access token. It returns
// EINVALID naming item_id for a bad id, ENOTFOUND when there is no such
// Item, and the Sealer's EINTERNAL when the token does not open.
func (db *DB) AccessToken(ctx context.Context, itemID string) (linkd.AccessToken, error) {
	if err := checkID("item_id", itemID); err != nil {
		return linkd.AccessToken{}, err
	}
	var rec []byte
	err := db.pool.QueryRow(ctx, `SELECT record FROM access_tokens WHERE item_id = $1`, itemID).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return linkd.AccessToken{}, linkd.Errorf(linkd.ENOTFOUND, "item not found")
	} else if err != nil {
		return linkd.AccessToken{}, wrap("get access token", err)
	}
	sealed := new(storagev1.SealedAccessToken)
	if err := unmarshal("access token", rec, sealed); err != nil {
		return linkd.AccessToken{}, err
	}
	return db.sealer.UnsealAccessToken(itemID, sealed)
}

// DeleteItem deletes an Item; its sealed token, public token uses and
// queued refresh go with it (ON DELETE CASCADE). The Link session that
// created it keeps its item_id, as history. ENOTFOUND when there is none;
// EINVALID naming item_id for a bad id.
func (db *DB) DeleteItem(ctx context.Context, itemID string) error {
	if err := checkID("item_id", itemID); err != nil {
		return err
	}
	return db.inTx(ctx, "delete item", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM items WHERE item_id = $1`, itemID)
		if err == nil && tag.RowsAffected() == 0 {
			return linkd.Errorf(linkd.ENOTFOUND, "item not found")
		}
		return err
	})
}

// ItemForPublicToken returns the Item a public token was exchanged for,
// looked up by its SHA-256, or ENOTFOUND; EINVALID naming public_token
// for a bad one.
func (db *DB) ItemForPublicToken(ctx context.Context, publicToken string) (*linkdv1.Item, error) {
	if err := checkID("public_token", publicToken); err != nil {
		return nil, err
	}
	item, err := getItem(ctx, db.pool, `
		SELECT i.record FROM public_token_uses u JOIN items i ON i.item_id = u.item_id
		WHERE u.public_token_sha256 = $1`, publicTokenSum(publicToken))
	if linkd.ErrorCode(err) == linkd.ENOTFOUND {
		return nil, linkd.Errorf(linkd.ENOTFOUND, "public token not exchanged")
	}
	return item, wrap("get item for public token", err)
}

// ItemsAfter returns up to limit (capped by pageLimit) Items whose
// item_id sorts after after ("" starts at the first), in item_id order
// (the primary key's, under the database's collation), so that a walk
// over every Item reads one index range per page. EINVALID naming after
// when it is longer than any id.
func (db *DB) ItemsAfter(ctx context.Context, after string, limit int) ([]*linkdv1.Item, error) {
	if len(after) > maxIDLen {
		return nil, linkd.InvalidField("after", "after is over %d bytes", maxIDLen)
	}
	limit = pageLimit(limit)
	items, err := listItems(ctx, db.pool, `
		SELECT record FROM items WHERE item_id > $1 ORDER BY item_id LIMIT $2`, after, limit)
	return items, wrap("items after", err)
}
