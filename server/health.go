package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// itemStatusFor maps a Plaid error, as Link, Plaid's API or a webhook
// reports it, to the Item status it means, and reports false for errors
// that say nothing about the Item: those of another error_type, and the
// user's own mistakes inside Link (a wrong password in update mode leaves
// the Item as broken as it was).
//
//	ITEM_LOGIN_REQUIRED                         LOGIN_REQUIRED
//	PENDING_EXPIRATION                          PENDING_EXPIRATION
//	PENDING_DISCONNECT                          PENDING_DISCONNECT
//	USER_PERMISSION_REVOKED                     REVOKED
//	INVALID_CREDENTIALS, INVALID_MFA, ...       (no change)
//	any other ITEM_ERROR                        ERROR
func itemStatusFor(errorType, errorCode string) (linkdv1.ItemStatus, bool) {
	switch errorCode {
	case "ITEM_LOGIN_REQUIRED":
		return linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, true
	case "PENDING_EXPIRATION":
		return linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION, true
	case "PENDING_DISCONNECT":
		return linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT, true
	case "USER_PERMISSION_REVOKED":
		return linkdv1.ItemStatus_ITEM_STATUS_REVOKED, true
	case "INVALID_CREDENTIALS", "INVALID_MFA", "INVALID_SEND_METHOD", "INVALID_UPDATED_USERNAME",
		"INSUFFICIENT_CREDENTIALS", "USER_INPUT_TIMEOUT", "INVALID_PHONE_NUMBER", "INVALID_OTP":
		return 0, false
	}
	if errorType == "ITEM_ERROR" {
		return linkdv1.ItemStatus_ITEM_STATUS_ERROR, true
	}
	return 0, false
}

// noteItemError moves an Item to the status a Plaid error about it means,
// and returns the Item so updated; nil when the error says nothing about
// the Item. It is best effort: callers go on with the Plaid error either
// way, so a failure here is only logged.
func (s *Server) noteItemError(ctx context.Context, itemID string, err error) *linkdv1.Item {
	var e *linkd.Error
	if itemID == "" || !errors.As(err, &e) || e.Plaid == nil {
		return nil
	}
	st, ok := itemStatusFor(e.Plaid.ErrorType, e.Plaid.ErrorCode)
	if !ok {
		return nil
	}
	item, err := s.store.SetItemStatus(ctx, itemID, st, e.Plaid.ErrorCode)
	if err != nil {
		s.log.WarnContext(ctx, "item status not updated", "item_id", itemID, "err", err)
		return nil
	}
	s.log.InfoContext(ctx, "item status from Plaid", "item_id", itemID, "status", st.String(), "error_code", e.Plaid.ErrorCode)
	return item
}

// repaired handles a connected redirect of an update-mode session. Plaid's
// public token from update mode needs no exchange, and a redirect proves
// nothing by itself (it may be a resubmission, or made up), so linkd asks
// Plaid: if the Item's data answers, the Item is GOOD again; if Plaid
// still reports an Item error, that status stays; when Plaid cannot answer
// now, EUNAVAILABLE asks the caller to resubmit. Only LOGIN_REQUIRED and
// ERROR can be repaired this way.
func (s *Server) repaired(ctx context.Context, itemID, clientUserID string) (*linkdv1.Item, error) {
	item, err := s.store.GetItem(ctx, itemID)
	if err != nil {
		return nil, err
	}
	if item.GetClientUserId() != clientUserID {
		return nil, errItemNotFound()
	}
	switch item.GetStatus() {
	case linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, linkdv1.ItemStatus_ITEM_STATUS_ERROR:
	default:
		// Nothing Plaid's data can confirm: a GOOD Item stays GOOD, and a
		// pending expiry or disconnect still works while pending, so an
		// answering /accounts/get would prove nothing about it.
		return item, nil
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return nil, err
	}
	acc, err := s.plaid.GetAccounts(ctx, token)
	if err != nil {
		s.log.WarnContext(ctx, "update-mode connected, but Plaid does not confirm the repair", "item_id", itemID, "err", err)
		if updated := s.noteItemError(ctx, itemID, err); updated != nil {
			return updated, nil
		}
		// Plaid could not answer: the redirect is recorded and resubmitting
		// it is safe, so the caller retries rather than the repair being
		// lost (no webhook follows an update-mode repair).
		return nil, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE,
			"Plaid could not confirm the update-mode repair now; resubmit the redirect"), err)
	}
	if _, err := s.store.SetItemStatus(ctx, itemID, linkdv1.ItemStatus_ITEM_STATUS_GOOD, ""); err != nil {
		return nil, err
	}
	item, err = s.store.SetItemDetails(ctx, itemID, acc.InstitutionID, acc.InstitutionName, acc.Accounts)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "item repaired in update mode", "item_id", itemID)
	return item, nil
}

// renewLinkToken issues a fresh token for the same user and mode as tok,
// from the request tok was created for.
func (s *Server) renewLinkToken(ctx context.Context, tok *storagev1.StoredLinkToken) (*linkdv1.LinkToken, error) {
	req := proto.CloneOf(tok.GetRequest())
	if req == nil { // recorded before requests were kept
		req = &linkdv1.CreateLinkTokenRequest{ClientUserId: tok.GetClientUserId(), ItemId: tok.GetItemId()}
	}
	return s.issueLinkToken(ctx, req)
}
