package service

import (
	"context"
	"net/url"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// IssueLinkToken creates a link token at Plaid for a validated request,
// records it, and returns it with its webview URL. With item_id it is an
// update-mode token for that Item of req's user (ENOTFOUND otherwise, as
// for an unknown Item); a Plaid error about the Item also updates its
// status.
func (s *Service) IssueLinkToken(ctx context.Context, req *linkdv1.CreateLinkTokenRequest) (*linkdv1.LinkToken, error) {
	tok, stored, err := s.createLinkToken(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := s.store.PutLinkToken(ctx, stored); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "link token created", "client_user_id", tok.ClientUserId, "item_id", tok.ItemId)
	return tok, nil
}

// createLinkToken asks Plaid for a link token and returns it with the
// record to store; it stores nothing.
func (s *Service) createLinkToken(ctx context.Context, req *linkdv1.CreateLinkTokenRequest) (*linkdv1.LinkToken, *storagev1.StoredLinkToken, error) {
	opts := linkd.LinkTokenOptions{
		ClientUserID:       req.GetClientUserId(),
		ClientName:         or(req.GetClientName(), s.defaults.ClientName),
		Products:           orSlice(req.GetProducts(), s.defaults.Products),
		CountryCodes:       orSlice(req.GetCountryCodes(), s.defaults.CountryCodes),
		Language:           or(req.GetLanguage(), s.defaults.Language),
		RedirectURI:        req.GetRedirectUri(),
		AndroidPackageName: req.GetAndroidPackageName(),
		Webhook:            or(req.GetWebhook(), s.defaults.Webhook),

		HostedLink:                  req.GetHostedLink(),
		User:                        req.GetUser(),
		OptionalProducts:            req.GetOptionalProducts(),
		RequiredIfSupportedProducts: req.GetRequiredIfSupportedProducts(),
		AdditionalConsentedProducts: req.GetAdditionalConsentedProducts(),
		AccountFilters:              req.GetAccountFilters(),
		LinkCustomizationName:       req.GetLinkCustomizationName(),
		DaysRequested:               req.GetTransactions().GetDaysRequested(),
		AccountSelectionEnabled:     req.GetUpdate().GetAccountSelectionEnabled(),
		InstitutionID:               req.GetInstitutionId(),
	}
	if itemID := req.GetItemId(); itemID != "" {
		item, err := s.store.GetItem(ctx, itemID)
		if err != nil {
			return nil, nil, err
		}
		if item.GetClientUserId() != req.GetClientUserId() {
			return nil, nil, ErrItemNotFound()
		}
		if opts.AccessToken, err = s.store.AccessToken(ctx, itemID); err != nil {
			return nil, nil, err
		}
		opts.Products = nil
	}
	asked := s.now()
	res, err := s.plaid.CreateLinkToken(ctx, opts)
	if err != nil {
		s.noteItemError(ctx, req.GetItemId(), err, asked)
		return nil, nil, err
	}
	tok := &linkdv1.LinkToken{
		LinkToken:    res.LinkToken,
		Expiration:   timestamppb.New(res.Expiration),
		RequestId:    res.RequestID,
		ClientUserId: opts.ClientUserID,
		ItemId:       req.GetItemId(),
		UpdateMode:   req.GetItemId() != "",
	}
	if req.GetHostedLink() != nil {
		// Hosted Link runs in a browser tab, not a webview: no webview
		// URL, so that an app cannot open the token the wrong way.
		if res.HostedLinkURL == "" {
			return nil, nil, linkd.Errorf(linkd.EUNAVAILABLE, "Plaid returned no hosted_link_url for a Hosted Link token")
		}
		tok.HostedLinkUrl = res.HostedLinkURL
	} else {
		tok.WebviewUrl = s.WebviewURL(res.LinkToken)
	}
	return tok, &storagev1.StoredLinkToken{
		LinkToken:    tok.LinkToken,
		ClientUserId: tok.ClientUserId,
		CreatedAt:    timestamppb.New(s.now()),
		Expiration:   tok.Expiration,
		WebviewUrl:   tok.WebviewUrl,
		RequestId:    tok.RequestId,
		RedirectUri:  opts.RedirectURI,
		ItemId:       tok.ItemId,
		Request:      req,

		HostedLinkUrl: tok.HostedLinkUrl,
		HostedCheckAt: s.firstHostedCheck(tok),
	}, nil
}

// WebviewURL returns the Link page URL with isWebview=true and the token,
// keeping any query the configured page already has.
func (s *Service) WebviewURL(linkToken string) string {
	u := *s.linkURL
	q := "isWebview=true&token=" + url.QueryEscape(linkToken)
	if u.RawQuery != "" {
		q = u.RawQuery + "&" + q
	}
	u.RawQuery = q
	return u.String()
}

// renew returns the fresh link token for a dead one: the renewal recorded
// before (by any replica) while it is still valid, else a new one from
// Plaid for the same user and mode, recorded as the dead token's renewal
// unless another replica recorded one first (then that one is returned).
func (s *Service) renew(ctx context.Context, dead *storagev1.StoredLinkToken) (*linkdv1.LinkToken, error) {
	unlock := s.renewing.lock(dead.GetLinkToken())
	defer unlock()
	fresh, err := s.store.LinkTokenRenewal(ctx, dead.GetLinkToken(), s.now())
	switch linkd.ErrorCode(err) {
	case "":
		return linkTokenOf(fresh), nil
	case linkd.ENOTFOUND:
	default:
		return nil, err
	}
	req := proto.CloneOf(dead.GetRequest())
	if req == nil { // recorded before requests were kept
		req = &linkdv1.CreateLinkTokenRequest{ClientUserId: dead.GetClientUserId(), ItemId: dead.GetItemId()}
	}
	_, stored, err := s.createLinkToken(ctx, req)
	if err != nil {
		return nil, err
	}
	stood, err := s.store.RenewLinkToken(ctx, dead.GetLinkToken(), stored, s.now())
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "dead link token renewed", "client_user_id", stood.GetClientUserId(), "item_id", stood.GetItemId())
	return linkTokenOf(stood), nil
}

// linkTokenOf is the API view of a stored link token.
func linkTokenOf(t *storagev1.StoredLinkToken) *linkdv1.LinkToken {
	return &linkdv1.LinkToken{
		LinkToken:    t.GetLinkToken(),
		Expiration:   t.GetExpiration(),
		RequestId:    t.GetRequestId(),
		WebviewUrl:   t.GetWebviewUrl(),
		ClientUserId: t.GetClientUserId(),
		ItemId:       t.GetItemId(),
		UpdateMode:   t.GetItemId() != "",

		HostedLinkUrl: t.GetHostedLinkUrl(),
	}
}

// ErrItemNotFound is the error for a missing Item, given for another
// user's Items too so that a user learns nothing of them.
func ErrItemNotFound() error { return linkd.Errorf(linkd.ENOTFOUND, "item not found") }

// ErrSessionNotFound is ErrItemNotFound for Link sessions.
func ErrSessionNotFound() error { return linkd.Errorf(linkd.ENOTFOUND, "link session not found") }
