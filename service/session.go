package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Link session ids come from the webview, so any user can submit a
// redirect under another user's session id. Refusing it ("belongs to
// another link token") while a fresh id is accepted told the caller that
// the other user's session exists. Instead each user's redirects for a
// session id are kept apart: the first user to file one keeps the id as
// its key; another user's go under a key of their own (the id and a hash
// of the user), which is what that user's submits and reads resolve to. So
// a user gets the same answers whether or not someone else used the id,
// and never touches their record. A second link token of the same user
// still clashes (ECONFLICT): that tells the user only of its own session.
// A service reading a session id gets the first user's record.

// sessionKeySep joins a session id and the hash of a user; session ids
// Plaid issues (UUIDs) never contain it.
const sessionKeySep = "~u"

// userSessionKey is the key of clientUserID's record of a session id
// another user filed first.
func userSessionKey(sessionID, clientUserID string) string {
	sum := sha256.Sum256([]byte(clientUserID))
	return sessionID + sessionKeySep + hex.EncodeToString(sum[:12])
}

// sessionKey returns the store key under which clientUserID's redirects
// for sessionID are filed: sessionID unless another user filed it first.
// When the key is sessionID it also returns the read of its record that
// told, so that the redirect's first check against the session needs no
// second read.
func (s *Service) sessionKey(ctx context.Context, sessionID, clientUserID string) (string, *sessionRead, error) {
	if sessionID == "" {
		return "", nil, nil
	}
	sess, err := s.store.GetLinkSession(ctx, sessionID)
	switch {
	case linkd.ErrorCode(err) == linkd.ENOTFOUND:
		return sessionID, &sessionRead{key: sessionID, err: err}, nil
	case err != nil:
		return "", nil, err
	case sess.GetClientUserId() == "" || sess.GetClientUserId() == clientUserID:
		return sessionID, &sessionRead{key: sessionID, sess: sess}, nil
	}
	return userSessionKey(sessionID, clientUserID), nil, nil
}

// sessionRead is one GetLinkSession of key: the session, or its ENOTFOUND.
type sessionRead struct {
	key  string
	sess *linkdv1.LinkSession
	err  error
}

// SubmitRedirect takes in a parsed redirect for a link token its caller
// may use (see submitRedirect), filed in the caller's record of its Link
// session. When another user filed the same session id first between the
// lookup of the key and the write (both saw none), the clash is not
// answered: the redirect is filed again under this user's own key.
func (s *Service) SubmitRedirect(ctx context.Context, tok *storagev1.StoredLinkToken, r *linkdv1.WebviewRedirect) (RedirectOutcome, error) {
	sessionID := linkd.RedirectSessionID(r)
	key, read, err := s.sessionKey(ctx, sessionID, tok.GetClientUserId())
	if err != nil {
		return RedirectOutcome{}, err
	}
	out, err := s.submitRedirect(ctx, tok, r, key, read)
	if linkd.ErrorCode(err) != linkd.ECONFLICT || key != sessionID {
		return out, err
	}
	again, read, kerr := s.sessionKey(ctx, sessionID, tok.GetClientUserId())
	if kerr != nil || again == key {
		return out, err // the clash is with this user's own session, or not about the session
	}
	return s.submitRedirect(ctx, tok, r, again, read)
}

// GetLinkSession returns a recorded Link session, or ENOTFOUND: for an end
// user its own record of the id (see sessionKey), for a service the first
// user's.
func (s *Service) GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error) {
	sess, err := s.store.GetLinkSession(ctx, linkSessionID)
	c, _ := linkd.CallerFrom(ctx)
	if c.Service || c.UserID == "" || (err != nil && linkd.ErrorCode(err) != linkd.ENOTFOUND) {
		return sess, err
	}
	if err == nil && sess.GetClientUserId() == c.UserID {
		return sess, nil
	}
	own, err := s.store.GetLinkSession(ctx, userSessionKey(linkSessionID, c.UserID))
	if err != nil {
		return nil, err
	}
	own = proto.CloneOf(own)
	own.LinkSessionId = linkSessionID
	return own, nil
}
