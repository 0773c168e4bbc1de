package server

import (
	"context"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/service"
)

// Who may call what: one table, methodAccess, says for every LinkService
// method which callers it serves and how a user is kept to its own
// records. A service (API key) may act for any user. An end user (user
// token, whose sub is its client_user_id) may call only the methods whose
// access is not serviceOnly; each handler applies the method's rule with
// one call to the function named below. A request naming another user is
// EFORBIDDEN; a record of another user is ENOTFOUND with the very error a
// missing record gets, so that a user learns nothing of what others have.

// access is how a method keeps an end user to its own records.
type access int

const (
	// serviceOnly methods refuse end users (the interceptor does).
	serviceOnly access = iota
	// forItself: the request's client_user_id is the caller's (actFor).
	forItself
	// ownsItem: the request's item_id names the caller's Item
	// (authorizeItem, or ownedBy on the Item read).
	ownsItem
	// ownsLinkToken: the request's link_token was issued to the caller
	// (linkTokenFor).
	ownsLinkToken
	// ownsSession: the session read is the caller's (ownedBy).
	ownsSession
	// noRecord: touches no user's record.
	noRecord
)

// methodAccess is the access of every LinkService method. A method missing
// here is for services only (TestMethodAccess_EveryMethod fails until it
// is listed).
var methodAccess = map[string]access{
	linkdv1.LinkService_CreateLinkToken_FullMethodName:              forItself,
	linkdv1.LinkService_ParseRedirect_FullMethodName:                noRecord,
	linkdv1.LinkService_SubmitRedirect_FullMethodName:               ownsLinkToken,
	linkdv1.LinkService_ExchangePublicToken_FullMethodName:          forItself,
	linkdv1.LinkService_GetItem_FullMethodName:                      ownsItem,
	linkdv1.LinkService_ListItems_FullMethodName:                    forItself,
	linkdv1.LinkService_RemoveItem_FullMethodName:                   ownsItem,
	linkdv1.LinkService_GetLinkSession_FullMethodName:               ownsSession,
	linkdv1.LinkService_CreateSandboxPublicToken_FullMethodName:     noRecord, // sandbox only
	linkdv1.LinkService_ResumeOAuth_FullMethodName:                  ownsLinkToken,
	linkdv1.LinkService_GetLinkConversion_FullMethodName:            serviceOnly,
	linkdv1.LinkService_ResetSandboxItemLogin_FullMethodName:        serviceOnly,
	linkdv1.LinkService_FireSandboxWebhook_FullMethodName:           serviceOnly,
	linkdv1.LinkService_SetSandboxVerificationStatus_FullMethodName: serviceOnly,
	linkdv1.LinkService_SetEmulatorItemState_FullMethodName:         serviceOnly,
	linkdv1.LinkService_GetLinkToken_FullMethodName:                 ownsLinkToken,
	// An app's own test build completes its own sessions; emulator only.
	linkdv1.LinkService_CompleteSandboxLinkSession_FullMethodName: ownsLinkToken,
	linkdv1.LinkService_DeleteUserData_FullMethodName:             serviceOnly,
}

// userMayCall reports whether an end user may call method.
func userMayCall(method string) bool {
	a, ok := methodAccess[method]
	return ok && a != serviceOnly
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
var (
	errItemNotFound    = service.ErrItemNotFound
	errSessionNotFound = service.ErrSessionNotFound
)

// authorizeItem returns nil when the caller may act on the Item: a service
// without looking, a user when the Item is its own; ENOTFOUND otherwise.
func (s *Server) authorizeItem(ctx context.Context, itemID string) error {
	c, err := callerFrom(ctx)
	if err != nil || c.Service {
		return err
	}
	item, err := s.svc.GetItem(ctx, itemID)
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
	tok, err := s.svc.LinkToken(ctx, linkToken)
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
