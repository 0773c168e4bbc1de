package service

import (
	"context"
	"errors"

	"github.com/linkd/linkd"
)

// eraseAttempts bounds how often DeleteUserData starts over because the
// user linked another Item while it ran.
const eraseAttempts = 3

// UserErasure is what DeleteUserData did.
type UserErasure struct {
	// RemovedAtPlaid counts the Items Plaid removed at this call;
	// AlreadyGone those Plaid no longer had (an earlier, interrupted
	// erasure removed them, or the user revoked them at Plaid).
	RemovedAtPlaid, AlreadyGone int
	// Deleted counts the records deleted from the store.
	Deleted linkd.RecordCounts
}

// DeleteUserData erases an end user: it removes each of the user's Items
// at Plaid (an Item Plaid no longer has counts as removed), then every
// record of the user in one store transaction (linkd.Store's
// DeleteUserRecords). Nothing is deleted locally before Plaid has removed
// every Item, so an erasure that fails part way (Plaid unavailable, a
// crash) is resumed by calling again; the Plaid errors come back as they
// are. An Item linked while it runs makes it start over, up to
// eraseAttempts times, then EUNAVAILABLE.
func (s *Service) DeleteUserData(ctx context.Context, clientUserID string) (UserErasure, error) {
	var out UserErasure
	for range eraseAttempts {
		items, err := s.store.ListItems(ctx, clientUserID)
		if err != nil {
			return out, err
		}
		ids := make([]string, 0, len(items))
		for _, item := range items {
			gone, err := s.removeAtPlaid(ctx, item.GetItemId())
			if err != nil {
				return out, err
			}
			if gone {
				out.AlreadyGone++
			} else {
				out.RemovedAtPlaid++
			}
			ids = append(ids, item.GetItemId())
		}
		out.Deleted, err = s.store.DeleteUserRecords(ctx, clientUserID, ids)
		if linkd.ErrorCode(err) == linkd.EPRECONDITION {
			continue // an Item linked meanwhile: remove it at Plaid too
		}
		if err != nil {
			return out, err
		}
		s.log.InfoContext(ctx, "user data erased", "client_user_id", clientUserID,
			"items_removed_at_plaid", out.RemovedAtPlaid, "items_already_gone", out.AlreadyGone,
			"items", out.Deleted.Items, "sessions", out.Deleted.Sessions, "link_tokens", out.Deleted.LinkTokens, "webhooks", out.Deleted.Webhooks)
		return out, nil
	}
	return out, linkd.Errorf(linkd.EUNAVAILABLE, "the user linked new Items while being erased; call again")
}

// removeAtPlaid removes an Item at Plaid and reports whether Plaid no
// longer had it (ITEM_NOT_FOUND and the like, or an Item deleted here
// meanwhile).
func (s *Service) removeAtPlaid(ctx context.Context, itemID string) (gone bool, err error) {
	token, err := s.store.AccessToken(ctx, itemID)
	if linkd.ErrorCode(err) == linkd.ENOTFOUND {
		return true, nil
	} else if err != nil {
		return false, err
	}
	requestID, err := s.plaid.RemoveItem(ctx, token)
	switch {
	case errors.Is(err, linkd.ErrItemGone):
		return true, nil
	case err != nil:
		return false, err
	}
	s.log.InfoContext(ctx, "item removed at Plaid for a user's erasure", "item_id", itemID, "plaid_request_id", requestID)
	return false, nil
}
