package store

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/records"
)

// PutItem stores a new Item (created_at filled in when unset) and, in the
// same transaction, its access token sealed by the Sealer, the spent public
// token (removing any claim on it), its session (see linkd.NewItem) and
// its queued refresh, so that a connected Link costs one commit here. It
// returns the Item as stored, an EINVALID *linkd.Error naming item_id,
// client_user_id, link_session_id or access_token, ECONFLICT when the
// item_id exists or the public token was spent on another Item, and
// n.Session's error unchanged (nothing is then stored).
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
	if n.AccessToken.IsZero() {
		return nil, linkd.InvalidField("access_token", "access_token is required")
	}
	// Seal and encode before the write lock: they need no transaction.
	item = proto.CloneOf(item)
	now := db.now()
	if item.GetCreatedAt() == nil {
		item.CreatedAt = timestamppb.New(now)
	}
	sealed, err := db.sealer.SealAccessToken(item.GetItemId(), n.AccessToken)
	if err != nil {
		return nil, err
	}
	own := &storagev1.StoredItem{SealedAccessToken: sealed}
	var sum []byte
	if n.PublicToken != "" {
		sum = publicTokenKey(n.PublicToken)
		own.PublicTokenSums = [][]byte{sum}
	}
	if !n.RefreshAt.IsZero() {
		own.RefreshDue = timestamppb.New(n.RefreshAt)
	}
	v, err := encodeItem(item, own)
	if err != nil {
		return nil, err
	}
	use := &storagev1.PublicTokenUse{ItemId: item.GetItemId(), ExchangedAt: timestamppb.New(now)}
	err = db.update(ctx, "put item", func(tx *bbolt.Tx) error {
		return putItem(tx, item, v, sum, n, use)
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

// putItem is PutItem in tx; v is the Item's items value, sum its public
// token's SHA-256 (nil when none).
func putItem(tx *bbolt.Tx, item *linkdv1.Item, v, sum []byte, n linkd.NewItem, use *storagev1.PublicTokenUse) error {
	id := []byte(item.GetItemId())
	if tx.Bucket(bucketItems).Get(id) != nil {
		return linkd.Errorf(linkd.ECONFLICT, "item already exists")
	}
	if err := tx.Bucket(bucketItems).Put(id, v); err != nil {
		return err
	}
	if err := putItemIndexes(tx, item); err != nil {
		return err
	}
	if sum != nil {
		if tx.Bucket(bucketPublicTokenUses).Get(sum) != nil {
			return linkd.Errorf(linkd.ECONFLICT, "public token was already exchanged")
		}
		if err := put(tx, bucketPublicTokenUses, sum, use); err != nil {
			return err
		}
		if err := deleteClaim(tx, sum); err != nil {
			return err
		}
	}
	if sid := n.SessionID(); sid != "" && (n.Session != nil || tx.Bucket(bucketSessions).Get([]byte(sid)) != nil) {
		_, err := updateLinkSession(tx, sid, func(s *linkdv1.LinkSession) (bool, error) {
			changed := false
			// The session keeps the first Item it created while that Item
			// exists (a retried exchange must not re-point it).
			if old := s.GetItemId(); old != item.GetItemId() && (old == "" || tx.Bucket(bucketItems).Get([]byte(old)) == nil) {
				s.ItemId, changed = item.GetItemId(), true
			}
			if n.Session == nil {
				return changed, nil
			}
			more, err := n.Session(s)
			return changed || more, fnErr(err)
		}, time.Time{}, false) // an Item Plaid billed is never refused
		if err != nil {
			return err
		}
	}
	if !n.RefreshAt.IsZero() {
		return tx.Bucket(bucketRefreshQueue).Put(timeKey(n.RefreshAt, item.GetItemId()), nil)
	}
	return nil
}

// putItemIndexes writes an Item's user_items and institution_items entries.
func putItemIndexes(tx *bbolt.Tx, item *linkdv1.Item) error {
	created := item.GetCreatedAt().AsTime()
	if err := tx.Bucket(bucketUserItems).Put(strTimeKey(item.GetClientUserId(), created, item.GetItemId()), nil); err != nil {
		return err
	}
	if item.GetInstitutionId() == "" || len(item.GetInstitutionId()) > maxIDLen {
		return nil
	}
	return tx.Bucket(bucketInstitutionItems).Put(strTimeKey(item.GetInstitutionId(), created, item.GetItemId()), nil)
}

// sameItemIndexes reports whether putItemIndexes writes the same entries
// for a and b (of one item_id).
func sameItemIndexes(a, b *linkdv1.Item) bool {
	return a.GetClientUserId() == b.GetClientUserId() && a.GetInstitutionId() == b.GetInstitutionId() &&
		a.GetCreatedAt().AsTime().Equal(b.GetCreatedAt().AsTime())
}

// deleteItemIndexes deletes what putItemIndexes wrote for item.
func deleteItemIndexes(tx *bbolt.Tx, item *linkdv1.Item) error {
	created := item.GetCreatedAt().AsTime()
	if err := tx.Bucket(bucketUserItems).Delete(strTimeKey(item.GetClientUserId(), created, item.GetItemId())); err != nil {
		return err
	}
	if item.GetInstitutionId() == "" || len(item.GetInstitutionId()) > maxIDLen {
		return nil
	}
	return tx.Bucket(bucketInstitutionItems).Delete(strTimeKey(item.GetInstitutionId(), created, item.GetItemId()))
}

// GetItem returns an Item. It returns an ENOTFOUND *linkd.Error when there
// is no such Item.
func (db *DB) GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error) {
	if err := checkID("item_id", itemID); err != nil {
		return nil, err
	}
	item := new(linkdv1.Item)
	err := db.view(ctx, "get item", func(tx *bbolt.Tx) error {
		return getItem(tx, itemID, item)
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

func getItem(tx *bbolt.Tx, itemID string, item *linkdv1.Item) error {
	found, err := get(tx, bucketItems, []byte(itemID), item)
	if err != nil {
		return err
	} else if !found {
		return linkd.Errorf(linkd.ENOTFOUND, "item not found")
	}
	return nil
}

func newItem() *linkdv1.Item { return new(linkdv1.Item) }

// ListItems returns a user's Items, oldest first (by created_at, then
// item_id), from the user_items index; none is an empty list. It returns
// an EINTERNAL *linkd.Error when the store fails.
func (db *DB) ListItems(ctx context.Context, clientUserID string) ([]*linkdv1.Item, error) {
	if err := checkID("client_user_id", clientUserID); err != nil {
		return nil, err
	}
	return db.indexedItems(ctx, "list items", bucketUserItems, clientUserID)
}

// ItemsAtInstitution returns every user's Items at an institution, oldest
// first, from the institution_items index; none is an empty list. It
// returns an EINTERNAL *linkd.Error when the store fails.
func (db *DB) ItemsAtInstitution(ctx context.Context, institutionID string) ([]*linkdv1.Item, error) {
	if err := checkID("institution_id", institutionID); err != nil {
		return nil, err
	}
	return db.indexedItems(ctx, "items at institution", bucketInstitutionItems, institutionID)
}

// indexedItems reads the Items under str(id) in a str(id) be64 item_id
// index.
func (db *DB) indexedItems(ctx context.Context, op string, index []byte, id string) ([]*linkdv1.Item, error) {
	var items []*linkdv1.Item
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		items = nil
		prefix := strPrefix(id)
		skip := len(prefix) + 8 // the be64 created_at
		c := tx.Bucket(index).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) <= skip {
				return internal(op, errMalformedKey)
			}
			item := new(linkdv1.Item)
			if found, err := get(tx, bucketItems, k[skip:], item); err != nil {
				return err
			} else if !found {
				// The index names an Item that is gone: a bug, not the caller's.
				return internal(op, errDanglingIndex)
			}
			items = append(items, item)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// UpdateItem applies fn to an Item and stores it, with its index entries,
// when fn reports a change; it returns the Item as stored. It returns an
// ENOTFOUND *linkd.Error when there is no such Item, fn's error unchanged,
// and EINTERNAL when fn changes the item_id.
func (db *DB) UpdateItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	if err := checkID("item_id", itemID); err != nil {
		return nil, err
	}
	var out *linkdv1.Item
	err := db.update(ctx, "update item", func(tx *bbolt.Tx) error {
		var err error
		out, _, err = updateItem(tx, itemID, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateRefreshedItem is UpdateItem that also removes the Item's queued
// refresh, in the same transaction.
func (db *DB) UpdateRefreshedItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	if err := checkID("item_id", itemID); err != nil {
		return nil, err
	}
	var out *linkdv1.Item
	err := db.update(ctx, "update refreshed item", func(tx *bbolt.Tx) error {
		var err error
		out, _, err = updateItemRecord(tx, itemID, fn, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// updateItem is UpdateItem in tx. fn works on a copy, so that a change it
// does not report (or abandons with an error) is never stored or returned.
func updateItem(tx *bbolt.Tx, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, bool, error) {
	return updateItemRecord(tx, itemID, fn, false)
}

// updateItemRecord is updateItem that, with unqueue, also removes the
// Item's queued refresh. The store's fields of the record are kept as
// they are (but for the refresh unqueued).
func updateItemRecord(tx *bbolt.Tx, itemID string, fn func(item *linkdv1.Item) (bool, error), unqueue bool) (*linkdv1.Item, bool, error) {
	id := []byte(itemID)
	v := tx.Bucket(bucketItems).Get(id)
	if v == nil {
		return nil, false, linkd.Errorf(linkd.ENOTFOUND, "item not found")
	}
	old := new(linkdv1.Item)
	if err := records.Unmarshal(v, old); err != nil {
		return nil, false, internal("decode items value", err)
	}
	next := proto.CloneOf(old)
	changed, err := fn(next)
	if err != nil {
		return nil, false, fnErr(err)
	}
	if changed && next.GetItemId() != itemID {
		return nil, false, linkd.Errorf(linkd.EINTERNAL, "an update function changed an item's id")
	}
	if !changed && !unqueue {
		return old, false, nil
	}
	// The API fields are rewritten from next when it changed.
	var api, ownRaw []byte
	if changed {
		_, ownRaw, err = scanItem(v, nil)
	} else {
		api, ownRaw, err = splitItem(v)
	}
	if err != nil {
		return nil, false, err
	}
	ownChanged := false
	if unqueue {
		own, err := decodeOwn(ownRaw)
		if err != nil {
			return nil, false, err
		}
		if ownChanged, err = unqueueRefresh(tx, itemID, own); err != nil {
			return nil, false, err
		}
		if ownChanged {
			if ownRaw, err = proto.Marshal(own); err != nil {
				return nil, false, internal("encode items value", err)
			}
		}
	}
	if !changed {
		if ownChanged {
			return old, false, tx.Bucket(bucketItems).Put(id, append(api, ownRaw...))
		}
		return old, false, nil
	}
	// Most updates (a refresh, a status) leave the indexed fields alone;
	// rewriting the same index keys would still dirty their pages.
	if !sameItemIndexes(old, next) {
		if err := deleteItemIndexes(tx, old); err != nil {
			return nil, false, err
		}
		if err := putItemIndexes(tx, next); err != nil {
			return nil, false, err
		}
	}
	if api, err = records.Marshal(next); err != nil {
		return nil, false, internal("encode items value", err)
	}
	if err := tx.Bucket(bucketItems).Put(id, append(api, ownRaw...)); err != nil {
		return nil, false, err
	}
	return next, true, nil
}

// AccessToken unseals and returns an Item's access token. It returns an
// ENOTFOUND *linkd.Error when the Item has no token, and EINTERNAL when the
// token does not unseal (its master key is not in the keyring, or wrong).
func (db *DB) AccessToken(ctx context.Context, itemID string) (linkd.AccessToken, error) {
	if err := checkID("item_id", itemID); err != nil {
		return linkd.AccessToken{}, err
	}
	var sealed *storagev1.SealedAccessToken
	err := db.view(ctx, "get access token", func(tx *bbolt.Tx) error {
		_, own, _, err := itemRecord(tx, []byte(itemID))
		if sealed = own.GetSealedAccessToken(); err == nil && sealed == nil {
			err = linkd.Errorf(linkd.ENOTFOUND, "item not found")
		}
		return err
	})
	if err != nil {
		return linkd.AccessToken{}, err
	}
	// Unseal after the read lock: it needs no transaction.
	return db.sealer.UnsealAccessToken(itemID, sealed)
}

// DeleteItem deletes an Item, its sealed access token, its index entries,
// its queued refresh and the public token uses pointing at it. It leaves
// the item_id of the Link session that created it, as history. It returns
// an ENOTFOUND *linkd.Error when there is no such Item.
func (db *DB) DeleteItem(ctx context.Context, itemID string) error {
	if err := checkID("item_id", itemID); err != nil {
		return err
	}
	return db.update(ctx, "delete item", func(tx *bbolt.Tx) error {
		return deleteItem(tx, itemID)
	})
}

// deleteItem is DeleteItem in tx, for DeleteUserRecords too.
func deleteItem(tx *bbolt.Tx, itemID string) error {
	id := []byte(itemID)
	v := tx.Bucket(bucketItems).Get(id)
	if v == nil {
		return linkd.Errorf(linkd.ENOTFOUND, "item not found")
	}
	var item linkdv1.Item
	if err := records.Unmarshal(v, &item); err != nil {
		return internal("decode items value", err)
	}
	own, err := ownOf(v)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketItems).Delete(id); err != nil {
		return err
	}
	if err := deleteItemIndexes(tx, &item); err != nil {
		return err
	}
	if _, err := unqueueRefresh(tx, itemID, own); err != nil {
		return err
	}
	// The uses of public tokens spent on the Item.
	uses := tx.Bucket(bucketPublicTokenUses)
	for _, sum := range own.GetPublicTokenSums() {
		if err := uses.Delete(sum); err != nil {
			return err
		}
	}
	return nil
}

// ItemForPublicToken returns the Item a public token was exchanged for,
// looked up by the token's SHA-256. It returns an ENOTFOUND *linkd.Error
// when the token was not exchanged or its Item was deleted.
func (db *DB) ItemForPublicToken(ctx context.Context, publicToken string) (*linkdv1.Item, error) {
	if publicToken == "" {
		return nil, linkd.InvalidField("public_token", "public_token is required")
	}
	item := new(linkdv1.Item)
	err := db.view(ctx, "get item for public token", func(tx *bbolt.Tx) error {
		var use storagev1.PublicTokenUse
		if found, err := get(tx, bucketPublicTokenUses, publicTokenKey(publicToken), &use); err != nil {
			return err
		} else if !found {
			return linkd.Errorf(linkd.ENOTFOUND, "public token not exchanged")
		}
		return getItem(tx, use.GetItemId(), item)
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

// ItemsAfter returns up to limit (MaxPageSize when zero or less) Items
// whose item_id sorts after after ("" starts at the first), in item_id
// byte order, from the items bucket's own key order. It returns an
// EINVALID *linkd.Error naming after when it is too long, and EINTERNAL
// when the store fails.
func (db *DB) ItemsAfter(ctx context.Context, after string, limit int) ([]*linkdv1.Item, error) {
	if len(after) > maxIDLen {
		return nil, linkd.InvalidField("after", "after is over %d bytes", maxIDLen)
	}
	limit = pageLimit(limit)
	var items []*linkdv1.Item
	err := db.view(ctx, "items after", func(tx *bbolt.Tx) error {
		items = nil
		c := tx.Bucket(bucketItems).Cursor()
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		for ; k != nil && len(items) < limit; k, _ = c.Next() {
			item := new(linkdv1.Item)
			if _, err := get(tx, bucketItems, k, item); err != nil {
				return err
			}
			items = append(items, item)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}
