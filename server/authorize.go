package server

import (
	"context"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Who may call what. A service (API key) may act for any user. An end user
// (user token, whose sub is its client_user_id) may call the methods in
// userMethods, and each handler keeps it to what is its own with one call
// to the functions below: a request naming another user is EFORBIDDEN; a
// record of another user is ENOTFOUND with the very error a missing record
// gets, so that a user learns nothing of what others have.

// userMethods are the LinkService methods an end user may call. A method
// added later is for services only until it is listed here with its checks.
var userMethods = map[string]bool{
	linkdv1.LinkService_CreateLinkToken_FullMethodName:          true, // for itself: actFor
	linkdv1.LinkService_ParseRedirect_FullMethodName:            true, // pure, touches no record
	linkdv1.LinkService_SubmitRedirect_FullMethodName:           true, // its own link tokens: linkTokenFor
	linkdv1.LinkService_ExchangePublicToken_FullMethodName:      true, // for itself: actFor
	linkdv1.LinkService_GetItem_FullMethodName:                  true, // its own: ownedBy
	linkdv1.LinkService_ListItems_FullMethodName:                true, // its own: actFor
	linkdv1.LinkService_RemoveItem_FullMethodName:               true, // its own: authorizeItem
	linkdv1.LinkService_GetLinkSession_FullMethodName:           true, // its own: ownedBy
	linkdv1.LinkService_CreateSandboxPublicToken_FullMethodName: true, // sandbox only, touches no record
	linkdv1.LinkService_ResumeOAuth_FullMethodName:              true, // its own link tokens: linkTokenFor
}

// callerFrom returns the Caller authentication put in ctx, or EUNAUTHORIZED
// when there is none: a handler reached without the interceptors refuses
// rather than acting for anyone.
func callerFrom(ctx context.Context) (linkd.Caller, error) {
	c, ok := linkd.CallerFrom(ctx)
	if !ok || (!c.Service && c.UserID == "") {
		return linkd.Caller{}, linkd.Errorf(linkd.EUNAUTHORIZED, "no authenticated caller")
	}
	return c, nil
}

// actFor settles the user a request acts for, in *clientUserID: a service
// names anyone; an end user only itself, and leaving it empty means itself.
// It returns EFORBIDDEN when a user names another user.
func actFor(ctx context.Context, clientUserID *string) error {
	c, err := callerFrom(ctx)
	switch {
	case err != nil:
		return err
	case c.Service:
		return nil
	case *clientUserID == "":
		*clientUserID = c.UserID
		return nil
	case *clientUserID != c.UserID:
		return linkd.Errorf(linkd.EFORBIDDEN, "client_user_id must be your own (your token's sub)")
	}
	return nil
}

// ownedBy returns nil when the caller may see a record belonging to owner:
// a service always, a user only its own. Otherwise it returns notFound,
// what a missing record gets.
func ownedBy(ctx context.Context, owner string, notFound error) error {
	c, err := callerFrom(ctx)
	if err != nil {
		return err
	}
	if c.Service || owner == c.UserID {
		return nil
	}
	return notFound
}

// errItemNotFound and errSessionNotFound are the store's errors for
// missing records, given for another user's records too.
func errItemNotFound() error    { return linkd.Errorf(linkd.ENOTFOUND, "item not found") }
func errSessionNotFound() error { return linkd.Errorf(linkd.ENOTFOUND, "link session not found") }

// authorizeItem returns nil when the caller may act on the Item: a service
// without looking, a user when the Item is its own; ENOTFOUND otherwise.
func (s *Server) authorizeItem(ctx context.Context, itemID string) error {
	c, err := callerFrom(ctx)
	if err != nil || c.Service {
		return err
	}
	item, err := s.store.GetItem(ctx, itemID)
	if err != nil {
		return err
	}
	return ownedBy(ctx, item.GetClientUserId(), errItemNotFound())
}

// linkTokenFor returns the stored link token when the caller may use it. A
// token linkd never issued is EINVALID naming link_token for a service; for
// a user, that and another user's token are the same ENOTFOUND.
func (s *Server) linkTokenFor(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error) {
	c, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	notFound := &linkd.Error{Code: linkd.ENOTFOUND, Message: "link_token was not issued by this linkd to you"}
	tok, err := s.store.GetLinkToken(ctx, linkToken)
	switch {
	case linkd.ErrorCode(err) == linkd.ENOTFOUND && c.Service:
		return nil, linkd.InvalidField("link_token", "link_token was not issued by this linkd")
	case linkd.ErrorCode(err) == linkd.ENOTFOUND:
		return nil, notFound
	case err != nil:
		return nil, err
	}
	if err := ownedBy(ctx, tok.GetClientUserId(), notFound); err != nil {
		return nil, err
	}
	return tok, nil
}

// isService reports whether the caller is a service (API key).
func isService(ctx context.Context) bool {
	c, ok := linkd.CallerFrom(ctx)
	return ok && c.Service
}
