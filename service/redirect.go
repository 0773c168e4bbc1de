package service

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// RedirectOutcome is what taking in one redirect led to.
type RedirectOutcome struct {
	// Item is the Item a connected redirect created or repaired, or the
	// Item an update-mode error report moved to another status.
	Item *linkdv1.Item
	// NewLinkToken is a fresh token for the same user and mode when the
	// redirect's token is dead (INVALID_LINK_TOKEN, or expired before the
	// session connected).
	NewLinkToken *linkdv1.LinkToken
}

// SubmitRedirect takes in a parsed redirect for a link token its caller
// may use: it files the redirect in its Link session, exchanges a
// connected redirect's public token (once) into an Item, or for an
// update-mode token has Plaid confirm the repair; an item error reported
// in update mode moves the Item to the matching status; a dead token gets
// a fresh one. A connected redirect of a new Item costs two commits: the
// exchange claim, then the Item with its session. The session is filed
// under sessionID, its key for this user (see sessionKey); read, when not
// nil, is the read of it sessionKey made, which the first check of the
// redirect against the session uses instead of reading again.
func (s *Service) submitRedirect(ctx context.Context, tok *storagev1.StoredLinkToken, r *linkdv1.WebviewRedirect, sessionID string, read *sessionRead) (RedirectOutcome, error) {
	var out RedirectOutcome
	s.metrics.Redirect(redirectKind(tok, r))
	merge := linkd.MergeRedirect(tok.GetLinkToken(), tok.GetClientUserId(), r, s.now())
	connected := r.GetConnected()
	if connected != nil && tok.GetItemId() == "" {
		// A session that cannot take this redirect refuses it before
		// Plaid spends anything.
		if _, err := s.checkMerge(ctx, sessionID, merge, read); err != nil {
			return out, err
		}
		item, stored, err := s.exchange(ctx, exchangeRequest{
			publicToken: connected.GetPublicToken(), clientUserID: tok.GetClientUserId(),
			connected: connected, merge: merge, sessionKey: sessionID,
			webhookRequested: s.webhookRequested(tok),
		})
		if !stored {
			// The redirect is recorded whatever the exchange did (a
			// duplicate still connected, a resubmission changes nothing).
			// The exchange may have changed the session: read it again.
			if rerr := s.recordRedirect(ctx, sessionID, merge, nil); rerr != nil && err == nil {
				err = rerr
			}
		}
		if err != nil {
			return out, err
		}
		out.Item = item
		return out, nil
	}
	if err := s.recordRedirect(ctx, sessionID, merge, read); err != nil {
		return out, err
	}
	if r.GetConnected() != nil {
		item, err := s.repaired(ctx, tok)
		if err != nil {
			return out, err
		}
		out.Item = item
	}
	linkErr := linkd.RedirectLinkError(r)
	if tok.GetItemId() != "" && linkErr != nil {
		// A redirect is the client's word, as easily made up or replayed:
		// it may mark an Item broken (any later report from Plaid mends
		// that), never REVOKED, which is final; Plaid's own
		// USER_PERMISSION_REVOKED (webhook, or an answer about the Item)
		// does that.
		if st, ok := linkd.ItemStatusFor(linkErr.GetErrorType(), linkErr.GetErrorCode()); ok && st != linkdv1.ItemStatus_ITEM_STATUS_REVOKED {
			item, err := s.store.UpdateItem(ctx, tok.GetItemId(), linkd.SetItemStatus(st, linkErr.GetErrorCode(), s.now()))
			if err != nil {
				return out, err
			}
			out.Item = item
			s.log.InfoContext(ctx, "item status from Link", "item_id", tok.GetItemId(), "status", st.String(), "error_code", linkErr.GetErrorCode())
		}
	}
	expired := tok.GetExpiration() != nil && !s.now().Before(tok.GetExpiration().AsTime())
	if linkd.RenewsLinkToken(r) || (expired && connected == nil) {
		// Best effort: the redirect is recorded, so failing the call now
		// would make the client resubmit it for nothing.
		var err error
		if out.NewLinkToken, err = s.renew(ctx, tok); err != nil {
			s.log.WarnContext(ctx, "cannot issue a fresh link token for a dead one", "client_user_id", tok.GetClientUserId(), "err", err)
		}
	}
	return out, nil
}

// checkMerge applies merge to a copy of the stored session and returns
// whether it would change it, and its error; it writes nothing. read,
// when it is of sessionID, stands for reading the session.
func (s *Service) checkMerge(ctx context.Context, sessionID string, merge func(*linkdv1.LinkSession) (bool, error), read *sessionRead) (bool, error) {
	var sess *linkdv1.LinkSession
	var err error
	if read != nil && read.key == sessionID {
		sess, err = read.sess, read.err
	} else {
		sess, err = s.store.GetLinkSession(ctx, sessionID)
	}
	switch linkd.ErrorCode(err) {
	case "":
		return merge(proto.CloneOf(sess))
	case linkd.ENOTFOUND:
		return true, nil
	}
	return false, err
}

// recordRedirect files a redirect in its session. A resubmission, which
// changes nothing, is found by a read (read, when given; see checkMerge)
// and costs no write transaction. An exit without a session id (Link
// ended before a session began) has no session to be filed in: it is not
// recorded.
func (s *Service) recordRedirect(ctx context.Context, sessionID string, merge func(*linkdv1.LinkSession) (bool, error), read *sessionRead) error {
	if sessionID == "" {
		return nil
	}
	changed, err := s.checkMerge(ctx, sessionID, merge, read)
	if err != nil || !changed {
		return err
	}
	_, err = s.store.UpdateLinkSession(ctx, sessionID, merge)
	return err
}

// LinkToken returns a link token linkd issued, or ENOTFOUND.
func (s *Service) LinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error) {
	return s.store.GetLinkToken(ctx, linkToken)
}

// redirectKind names a redirect's kind for Metrics.
func redirectKind(tok *storagev1.StoredLinkToken, r *linkdv1.WebviewRedirect) string {
	switch r.GetResult().(type) {
	case *linkdv1.WebviewRedirect_Connected:
		if tok.GetItemId() != "" {
			return RedirectConnectedUpdate
		}
		return RedirectConnected
	case *linkdv1.WebviewRedirect_Exit:
		return RedirectExit
	}
	return RedirectEvent
}

// webhookRequested reports whether tok's request named a webhook URL of
// its own, not linkd's default.
func (s *Service) webhookRequested(tok *storagev1.StoredLinkToken) bool {
	w := tok.GetRequest().GetWebhook()
	return w != "" && w != s.defaults.Webhook
}
