package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// PutItem stores a new Item, filling in created_at when unset, and apart
// from it the access token sealed with the current master key. When
// publicToken is not empty it records the token's SHA-256 as spent on this
// Item, and when the Item has a link_session_id of a recorded session it
// sets the session's item_id, unless the session already names another
// Item that still exists (the session keeps its first). All in one
// transaction.
//
// It returns an EINVALID *linkd.Error naming item_id, client_user_id or
// access_token when one is missing, and ECONFLICT when the item_id exists
// or the public token was spent on another Item. A session is never a
// reason to refuse: the Item exists at Plaid and its token must be kept.
func (db *DB) PutItem(ctx context.Context, item *linkdv1.Item, token linkd.AccessToken, publicToken string) error {
	if err := checkID("item_id", item.GetItemId()); err != nil {
		return err
	}
	if err := checkID("client_user_id", item.GetClientUserId()); err != nil {
		return err
	}
	if sid := item.GetLinkSessionId(); sid != "" {
		if err := checkID("link_session_id", sid); err != nil {
			return err
		}
	}
	if token.IsZero() {
		return linkd.InvalidField("access_token", "access_token is required")
	}
	// Seal and encode before the write lock: they need no transaction.
	if item.GetCreatedAt() == nil {
		item = proto.CloneOf(item)
		item.CreatedAt = timestamppb.New(db.now())
	}
	sealed, err := db.sealer.sealAccessToken(item.GetItemId(), token)
	if err != nil {
		return err
	}
	var use *storagev1.PublicTokenUse
	if publicToken != "" {
		use = &storagev1.PublicTokenUse{ItemId: item.GetItemId(), ExchangedAt: timestamppb.New(db.now())}
	}
	return db.update(ctx, "put item", func(tx *bbolt.Tx) error {
		return putItem(tx, item, sealed, publicToken, use)
	})
}

func putItem(tx *bbolt.Tx, item *linkdv1.Item, sealed *storagev1.SealedAccessToken, publicToken string, use *storagev1.PublicTokenUse) error {
	id := []byte(item.GetItemId())
	items := tx.Bucket(bucketItems)
	if items.Get(id) != nil {
		return linkd.Errorf(linkd.ECONFLICT, "item already exists")
	}
	if err := put(tx, bucketItems, id, item); err != nil {
		return err
	}
	if err := put(tx, bucketAccessTokens, id, sealed); err != nil {
		return err
	}
	userKey := userItemKey(item.GetClientUserId(), item.GetCreatedAt().AsTime(), item.GetItemId())
	if err := tx.Bucket(bucketUserItems).Put(userKey, nil); err != nil {
		return err
	}
	if use != nil {
		if err := putPublicTokenUse(tx, publicToken, use); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPendingExchanges).Delete(publicTokenKey(publicToken)); err != nil {
			return err
		}
	}
	if item.GetLinkSessionId() != "" {
		return linkSessionToItem(tx, item.GetLinkSessionId(), item.GetItemId())
	}
	return nil
}

// putPublicTokenUse records a spent public token and its reverse entry.
func putPublicTokenUse(tx *bbolt.Tx, publicToken string, use *storagev1.PublicTokenUse) error {
	sum := publicTokenKey(publicToken)
	if tx.Bucket(bucketPublicTokenUses).Get(sum) != nil {
		return linkd.Errorf(linkd.ECONFLICT, "public token was already exchanged")
	}
	if err := put(tx, bucketPublicTokenUses, sum, use); err != nil {
		return err
	}
	return tx.Bucket(bucketItemPublicTokens).Put(itemPublicTokenKey(use.GetItemId(), sum), nil)
}

// linkSessionToItem sets a recorded session's item_id; a session not
// recorded, or one that created another Item still stored, is left alone.
func linkSessionToItem(tx *bbolt.Tx, sessionID, itemID string) error {
	key := []byte(sessionID)
	var s linkdv1.LinkSession
	if found, err := get(tx, bucketSessions, key, &s); err != nil || !found {
		return err
	}
	switch old := s.GetItemId(); {
	case old == itemID:
		return nil
	case old != "" && tx.Bucket(bucketItems).Get([]byte(old)) != nil:
		return nil
	}
	s.ItemId = itemID
	return put(tx, bucketSessions, key, &s)
}

// GetItem returns an Item. It returns an ENOTFOUND *linkd.Error when there
// is no such Item.
func (db *DB) GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error) {
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

// ListItems returns a user's Items, oldest first (by created_at, then
// item_id); none is an empty list. It returns an EINTERNAL *linkd.Error
// when the store fails.
func (db *DB) ListItems(ctx context.Context, clientUserID string) ([]*linkdv1.Item, error) {
	var items []*linkdv1.Item
	err := db.view(ctx, "list items", func(tx *bbolt.Tx) error {
		var err error
		items, err = listItems(tx, clientUserID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

func listItems(tx *bbolt.Tx, clientUserID string) ([]*linkdv1.Item, error) {
	prefix := userItemsPrefix(clientUserID)
	skip := len(prefix) + 8 // the be64 created_at
	var items []*linkdv1.Item
	c := tx.Bucket(bucketUserItems).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) <= skip {
			return nil, internal("list items", errMalformedKey)
		}
		item := new(linkdv1.Item)
		if found, err := get(tx, bucketItems, k[skip:], item); err != nil {
			return nil, err
		} else if !found {
			// The index names an Item that is gone: a bug, not the caller's.
			return nil, internal("list items", errDanglingIndex)
		}
		items = append(items, item)
	}
	return items, nil
}

// AccessToken unseals and returns an Item's access token. It returns an
// ENOTFOUND *linkd.Error when the Item has no token, and EINTERNAL when the
// token does not unseal (its master key is not in the keyring, or wrong).
func (db *DB) AccessToken(ctx context.Context, itemID string) (linkd.AccessToken, error) {
	var sealed storagev1.SealedAccessToken
	err := db.view(ctx, "get access token", func(tx *bbolt.Tx) error {
		found, err := get(tx, bucketAccessTokens, []byte(itemID), &sealed)
		if err == nil && !found {
			err = linkd.Errorf(linkd.ENOTFOUND, "item not found")
		}
		return err
	})
	if err != nil {
		return linkd.AccessToken{}, err
	}
	// Unseal after the read lock: it needs no transaction.
	return db.sealer.unsealAccessToken(itemID, &sealed)
}

// DeleteItem deletes an Item, its sealed access token, its user_items entry
// and the public token uses pointing at it. It leaves the item_id of the
// Link session that created it, as history. It returns an ENOTFOUND
// *linkd.Error when there is no such Item.
func (db *DB) DeleteItem(ctx context.Context, itemID string) error {
	return db.update(ctx, "delete item", func(tx *bbolt.Tx) error {
		return deleteItem(tx, itemID)
	})
}

func deleteItem(tx *bbolt.Tx, itemID string) error {
	var item linkdv1.Item
	if err := getItem(tx, itemID, &item); err != nil {
		return err
	}
	id := []byte(itemID)
	if err := tx.Bucket(bucketItems).Delete(id); err != nil {
		return err
	}
	if err := tx.Bucket(bucketAccessTokens).Delete(id); err != nil {
		return err
	}
	userKey := userItemKey(item.GetClientUserId(), item.GetCreatedAt().AsTime(), itemID)
	if err := tx.Bucket(bucketUserItems).Delete(userKey); err != nil {
		return err
	}
	return deletePublicTokenUses(tx, itemID)
}

// deletePublicTokenUses deletes the uses of public tokens spent on an Item.
func deletePublicTokenUses(tx *bbolt.Tx, itemID string) error {
	prefix := itemPublicTokensPrefix(itemID)
	reverse := tx.Bucket(bucketItemPublicTokens)
	// Collect first: deleting under a cursor can make it skip keys.
	var keys [][]byte
	c := reverse.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+sha256.Size {
			return internal("delete item", errMalformedKey)
		}
		keys = append(keys, bytes.Clone(k))
	}
	uses := tx.Bucket(bucketPublicTokenUses)
	for _, k := range keys {
		if err := uses.Delete(k[len(prefix):]); err != nil {
			return err
		}
		if err := reverse.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ItemForPublicToken returns the Item a public token was exchanged for,
// looked up by the token's SHA-256. It returns an ENOTFOUND *linkd.Error
// when the token was not exchanged or its Item was deleted.
func (db *DB) ItemForPublicToken(ctx context.Context, publicToken string) (*linkdv1.Item, error) {
	item := new(linkdv1.Item)
	err := db.view(ctx, "get item for public token", func(tx *bbolt.Tx) error {
		return itemForPublicToken(tx, publicToken, item)
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

func itemForPublicToken(tx *bbolt.Tx, publicToken string, item *linkdv1.Item) error {
	if publicToken == "" {
		return linkd.Errorf(linkd.ENOTFOUND, "public token not exchanged")
	}
	var use storagev1.PublicTokenUse
	if found, err := get(tx, bucketPublicTokenUses, publicTokenKey(publicToken), &use); err != nil {
		return err
	} else if !found {
		return linkd.Errorf(linkd.ENOTFOUND, "public token not exchanged")
	}
	return getItem(tx, use.GetItemId(), item)
}

// SetItemStatus sets an Item's status and error code and returns the Item.
// status_changed_at is stamped only when the status or error code changes,
// so a repeated report (a webhook redelivered) changes nothing. It returns
// an EINVALID *linkd.Error naming status for ITEM_STATUS_UNSPECIFIED, and
// ENOTFOUND when there is no such Item.
func (db *DB) SetItemStatus(ctx context.Context, itemID string, status linkdv1.ItemStatus, errorCode string) (*linkdv1.Item, error) {
	if status == linkdv1.ItemStatus_ITEM_STATUS_UNSPECIFIED {
		return nil, linkd.InvalidField("status", "status is required")
	}
	now := timestamppb.New(db.now())
	item := new(linkdv1.Item)
	err := db.update(ctx, "set item status", func(tx *bbolt.Tx) error {
		return setItemStatus(tx, itemID, status, errorCode, now, item)
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

// statusMayChange is the precedence of Item statuses, so that reports
// arriving in any order cannot hide a worse state: REVOKED is final (the
// user withdrew consent; only removing the Item ends it), and a pending
// expiry or disconnect never covers LOGIN_REQUIRED or ERROR, which need
// the user now.
func statusMayChange(from, to linkdv1.ItemStatus) bool {
	switch {
	case to == linkdv1.ItemStatus_ITEM_STATUS_REVOKED:
		return true
	case from == linkdv1.ItemStatus_ITEM_STATUS_REVOKED:
		return false
	case to == linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION || to == linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT:
		return from != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED && from != linkdv1.ItemStatus_ITEM_STATUS_ERROR
	}
	return true
}

// setItemStatus is SetItemStatus in tx, leaving the Item in item; a change
// statusMayChange forbids leaves the Item as it is.
func setItemStatus(tx *bbolt.Tx, itemID string, status linkdv1.ItemStatus, errorCode string, now *timestamppb.Timestamp, item *linkdv1.Item) error {
	if err := getItem(tx, itemID, item); err != nil {
		return err
	}
	if item.GetStatus() == status && item.GetErrorCode() == errorCode {
		return nil
	}
	if !statusMayChange(item.GetStatus(), status) {
		return nil
	}
	item.Status, item.ErrorCode, item.StatusChangedAt = status, errorCode, now
	return put(tx, bucketItems, []byte(itemID), item)
}

// SetItemDetails replaces an Item's institution id and name where the new
// value is not empty, and its accounts when the list is not empty, in one
// transaction, and returns the Item. It returns an ENOTFOUND *linkd.Error
// when there is no such Item.
func (db *DB) SetItemDetails(ctx context.Context, itemID, institutionID, institutionName string, accounts []*linkdv1.Account) (*linkdv1.Item, error) {
	item := new(linkdv1.Item)
	err := db.update(ctx, "set item details", func(tx *bbolt.Tx) error {
		if err := getItem(tx, itemID, item); err != nil {
			return err
		}
		if institutionID != "" {
			item.InstitutionId = institutionID
		}
		if institutionName != "" {
			item.InstitutionName = institutionName
		}
		if len(accounts) > 0 {
			item.Accounts = accounts
		}
		return put(tx, bucketItems, []byte(itemID), item)
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

func newItem() *linkdv1.Item { return new(linkdv1.Item) }

// ItemsAtInstitution returns every user's Items at an institution, oldest
// first. It scans the items bucket: duplicate checks across all users are
// rare next to reads, and an index would need a migration of existing
// files. It returns an EINTERNAL *linkd.Error when the store fails.
func (db *DB) ItemsAtInstitution(ctx context.Context, institutionID string) ([]*linkdv1.Item, error) {
	var items []*linkdv1.Item
	err := db.view(ctx, "items at institution", func(tx *bbolt.Tx) error {
		return each(tx, bucketItems, newItem, func(_ []byte, item *linkdv1.Item) error {
			if item.GetInstitutionId() == institutionID {
				items = append(items, item)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(items, func(a, b *linkdv1.Item) int {
		return a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime())
	})
	return items, nil
}
