// Package server implements linkd's LinkService over gRPC and, through
// grpc-gateway, over REST. It meets Plaid and the store through the
// interfaces of package linkd; cmd/linkd wires the real ones.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/redirect"
)

// DefaultLinkURL is Plaid's Link page for webviews.
const DefaultLinkURL = "https://cdn.plaid.com/link/v2/stable/link.html"

// LinkDefaults fill the link token options a CreateLinkToken request leaves out.
type LinkDefaults struct {
	ClientName   string
	Products     []string
	CountryCodes []string
	Language     string
	Webhook      string
}

// Config is what a Server needs.
type Config struct {
	// Plaid is the Plaid API (real or the emulator, through the same client).
	Plaid linkd.Plaid
	// Store keeps tokens, sessions and Items.
	Store linkd.Store
	// Logger receives structured logs; never a token.
	Logger *slog.Logger
	// LinkURL is the Link webview page; DefaultLinkURL when empty.
	LinkURL string
	// Defaults fill missing CreateLinkToken options.
	Defaults LinkDefaults
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Duplicates is the duplicate Item policy: DuplicatesPerUser (when
	// empty), DuplicatesAllUsers or DuplicatesOff.
	Duplicates string
}

// Server implements linkdv1.LinkServiceServer.
type Server struct {
	linkdv1.UnimplementedLinkServiceServer

	plaid    linkd.Plaid
	store    linkd.Store
	log      *slog.Logger
	linkURL  *url.URL
	defaults LinkDefaults
	now      func() time.Time
	// duplicates is the duplicate Item policy, one of the Duplicates* values.
	duplicates string
	// hookKeys caches Plaid's webhook verification keys.
	hookKeys webhookKeys
	// hookReplays keeps each verified webhook delivery from applying twice.
	hookReplays webhookReplays
	// exchanges serializes work on one public token, so concurrent
	// submissions of the same connected redirect exchange it once.
	exchanges keyedMutex
	// inflight counts exchanges in progress, for Drain.
	inflight sync.WaitGroup
	// renewals remembers the token issued for an expired one (see renew).
	renewals renewals
}

var _ linkdv1.LinkServiceServer = (*Server)(nil)

// New returns a Server, or EINVALID when the configured Link URL is not an
// absolute URL or the duplicate policy is unknown.
func New(cfg Config) (*Server, error) {
	if cfg.LinkURL == "" {
		cfg.LinkURL = DefaultLinkURL
	}
	u, err := url.Parse(cfg.LinkURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, linkd.InvalidField("link_url", "link URL %q is not an absolute URL", cfg.LinkURL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch cfg.Duplicates {
	case "":
		cfg.Duplicates = DuplicatesPerUser
	case DuplicatesPerUser, DuplicatesAllUsers, DuplicatesOff:
	default:
		return nil, linkd.InvalidField("duplicate_items", "duplicate item policy must be %q, %q or %q", DuplicatesPerUser, DuplicatesAllUsers, DuplicatesOff)
	}
	return &Server{
		plaid:    cfg.Plaid,
		store:    cfg.Store,
		log:      cfg.Logger,
		linkURL:  u,
		defaults: cfg.Defaults,
		now:      cfg.Now,

		duplicates: cfg.Duplicates,
	}, nil
}

// CreateLinkToken creates a Plaid link token for a user, records it, and
// returns it with its webview URL. With item_id it creates an update-mode
// token for that Item of the user, looking its access token up itself.
func (s *Server) CreateLinkToken(ctx context.Context, req *linkdv1.CreateLinkTokenRequest) (*linkdv1.CreateLinkTokenResponse, error) {
	if err := actFor(ctx, &req.ClientUserId); err != nil {
		return nil, err
	}
	if err := firstError(
		checkClientUserID("client_user_id", req.GetClientUserId()),
		checkEach("products", req.GetProducts(), productPattern, "a Plaid product name"),
		checkEach("country_codes", req.GetCountryCodes(), countryPattern, "an ISO-3166-1 alpha-2 code"),
		checkOptionalPattern("language", req.GetLanguage(), languagePattern, "a two-letter language code"),
		checkRedirectURI(req.GetRedirectUri(), s.plaid.Environment()),
		checkOAuthTarget(req.GetRedirectUri(), req.GetAndroidPackageName()),
		checkURL("webhook", req.GetWebhook()),
		checkOptionalPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"),
	); err != nil {
		return nil, err
	}
	if req.GetItemId() != "" && len(req.GetProducts()) > 0 {
		return nil, linkd.InvalidField("products", "products must be empty in update mode (with item_id): the Item keeps its products")
	}
	tok, err := s.issueLinkToken(ctx, req)
	if err != nil {
		return nil, err
	}
	return &linkdv1.CreateLinkTokenResponse{LinkToken: tok}, nil
}

// issueLinkToken creates and records a link token for a validated request.
// In update mode the Item must be the user's (ENOTFOUND otherwise, as for
// an unknown Item); a Plaid error about the Item also updates its status.
func (s *Server) issueLinkToken(ctx context.Context, req *linkdv1.CreateLinkTokenRequest) (*linkdv1.LinkToken, error) {
	opts := linkd.LinkTokenOptions{
		ClientUserID:       req.GetClientUserId(),
		ClientName:         or(req.GetClientName(), s.defaults.ClientName),
		Products:           orSlice(req.GetProducts(), s.defaults.Products),
		CountryCodes:       orSlice(req.GetCountryCodes(), s.defaults.CountryCodes),
		Language:           or(req.GetLanguage(), s.defaults.Language),
		RedirectURI:        req.GetRedirectUri(),
		AndroidPackageName: req.GetAndroidPackageName(),
		Webhook:            or(req.GetWebhook(), s.defaults.Webhook),
	}
	if itemID := req.GetItemId(); itemID != "" {
		item, err := s.store.GetItem(ctx, itemID)
		if err != nil {
			return nil, err
		}
		if item.GetClientUserId() != req.GetClientUserId() {
			return nil, linkd.Errorf(linkd.ENOTFOUND, "item not found")
		}
		if opts.AccessToken, err = s.store.AccessToken(ctx, itemID); err != nil {
			return nil, err
		}
		opts.Products = nil
	}
	res, err := s.plaid.CreateLinkToken(ctx, opts)
	if err != nil {
		s.noteItemError(ctx, req.GetItemId(), err)
		return nil, err
	}
	tok := &linkdv1.LinkToken{
		LinkToken:    res.LinkToken,
		Expiration:   timestamppb.New(res.Expiration),
		RequestId:    res.RequestID,
		WebviewUrl:   s.webviewURL(res.LinkToken),
		ClientUserId: opts.ClientUserID,
		ItemId:       req.GetItemId(),
		UpdateMode:   req.GetItemId() != "",
	}
	if err := s.store.PutLinkToken(ctx, &storagev1.StoredLinkToken{
		LinkToken:    tok.LinkToken,
		ClientUserId: tok.ClientUserId,
		CreatedAt:    timestamppb.New(s.now()),
		Expiration:   tok.Expiration,
		WebviewUrl:   tok.WebviewUrl,
		RequestId:    tok.RequestId,
		RedirectUri:  opts.RedirectURI,
		ItemId:       tok.ItemId,
		Request:      req,
	}); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "link token created", "client_user_id", tok.ClientUserId, "item_id", tok.ItemId, "plaid_request_id", tok.RequestId)
	return tok, nil
}

// webviewURL returns the Link page URL with isWebview=true and the token,
// keeping any query the configured page already has.
func (s *Server) webviewURL(linkToken string) string {
	u := *s.linkURL
	q := "isWebview=true&token=" + url.QueryEscape(linkToken)
	if u.RawQuery != "" {
		q = u.RawQuery + "&" + q
	}
	u.RawQuery = q
	return u.String()
}

// ParseRedirect parses a redirect URL; it calls nothing and stores nothing.
func (s *Server) ParseRedirect(ctx context.Context, req *linkdv1.ParseRedirectRequest) (*linkdv1.ParseRedirectResponse, error) {
	r, err := parseRedirect(req.GetUrl())
	if err != nil {
		return nil, err
	}
	return &linkdv1.ParseRedirectResponse{Redirect: r}, nil
}

// parseRedirect parses the url field of a request, so that its errors name
// the request field: "url" itself, or "url.<parameter>".
func parseRedirect(raw string) (*linkdv1.WebviewRedirect, error) {
	if raw == "" {
		return nil, linkd.InvalidField("url", "url is required")
	}
	r, err := redirect.Parse(raw)
	if err != nil {
		var e *linkd.Error
		if errors.As(err, &e) && e.Field != "" && e.Field != "url" {
			prefixed := *e
			prefixed.Field = "url." + e.Field
			return nil, &prefixed
		}
		return nil, err
	}
	return r, nil
}

// SubmitRedirect parses a redirect, records it for its link token and
// session, and for connected exchanges the public token (once) into an Item,
// or, for an update-mode token, marks the Item healthy without exchanging.
// An item error reported for an update-mode session moves the Item to the
// matching status. An exit with INVALID_LINK_TOKEN, or an expired token
// whose session did not connect, gets a fresh token in new_link_token.
func (s *Server) SubmitRedirect(ctx context.Context, req *linkdv1.SubmitRedirectRequest) (*linkdv1.SubmitRedirectResponse, error) {
	if err := firstError(
		checkPattern("link_token", req.GetLinkToken(), linkTokenPattern, "a Plaid link token"),
		checkOptionalUserID("client_user_id", req.GetClientUserId()),
	); err != nil {
		return nil, err
	}
	r, err := parseRedirect(req.GetUrl())
	if err != nil {
		return nil, err
	}
	if err := actFor(ctx, &req.ClientUserId); err != nil {
		return nil, err
	}
	tok, err := s.linkTokenFor(ctx, req.GetLinkToken())
	if err == nil && req.GetClientUserId() != "" && req.GetClientUserId() != tok.GetClientUserId() {
		// A service naming another user gets what a token linkd never issued
		// gets, so that it cannot probe whose a token is.
		err = linkd.InvalidField("link_token", "link_token was not issued by this linkd")
	}
	if err != nil {
		return nil, err
	}
	// Every redirect is filed under its session, which GetLinkSession must
	// be able to name again.
	if err := checkPattern("url.link_session_id", linkd.RedirectSessionID(r), plaidIDPattern, "a Link session id"); err != nil {
		return nil, err
	}
	if err := s.store.RecordRedirect(ctx, tok.GetLinkToken(), tok.GetClientUserId(), r); err != nil {
		return nil, err
	}
	resp := &linkdv1.SubmitRedirectResponse{}
	var linkErr *linkdv1.LinkError
	switch res := r.GetResult().(type) {
	case *linkdv1.WebviewRedirect_Connected:
		resp.Result = &linkdv1.SubmitRedirectResponse_Connected{Connected: res.Connected}
		var item *linkdv1.Item
		if tok.GetItemId() != "" {
			item, err = s.repaired(ctx, tok.GetItemId(), tok.GetClientUserId())
		} else {
			item, err = s.exchange(ctx, res.Connected.GetPublicToken(), tok.GetClientUserId(), res.Connected)
		}
		if err != nil {
			return nil, err
		}
		resp.Item = item
	case *linkdv1.WebviewRedirect_Exit:
		resp.Result = &linkdv1.SubmitRedirectResponse_Exit{Exit: res.Exit}
		linkErr = res.Exit.GetError()
	case *linkdv1.WebviewRedirect_Event:
		resp.Result = &linkdv1.SubmitRedirectResponse_Event{Event: res.Event}
		linkErr = res.Event.GetError()
	}
	if tok.GetItemId() != "" && linkErr != nil {
		if st, ok := itemStatusFor(linkErr.GetErrorType(), linkErr.GetErrorCode()); ok {
			if resp.Item, err = s.store.SetItemStatus(ctx, tok.GetItemId(), st, linkErr.GetErrorCode()); err != nil {
				return nil, err
			}
			s.log.InfoContext(ctx, "item status from Link", "item_id", tok.GetItemId(), "status", st.String(), "error_code", linkErr.GetErrorCode())
		}
	}
	expired := tok.GetExpiration() != nil && !s.now().Before(tok.GetExpiration().AsTime())
	if linkErr.GetErrorCode() == "INVALID_LINK_TOKEN" || (expired && resp.GetConnected() == nil) {
		// Best effort: the redirect is recorded, so failing the call now
		// would make the client resubmit it for nothing.
		if resp.NewLinkToken, err = s.renew(ctx, tok); err != nil {
			s.log.WarnContext(ctx, "cannot issue a fresh link token for a dead one", "client_user_id", tok.GetClientUserId(), "err", err)
		}
	}
	return resp, nil
}

// ExchangePublicToken exchanges a public token into a stored Item; a token
// already exchanged returns its Item again.
func (s *Server) ExchangePublicToken(ctx context.Context, req *linkdv1.ExchangePublicTokenRequest) (*linkdv1.ExchangePublicTokenResponse, error) {
	if err := actFor(ctx, &req.ClientUserId); err != nil {
		return nil, err
	}
	if err := firstError(
		checkPattern("public_token", req.GetPublicToken(), publicTokenPattern, "a Plaid public token"),
		checkClientUserID("client_user_id", req.GetClientUserId()),
	); err != nil {
		return nil, err
	}
	item, err := s.exchange(ctx, req.GetPublicToken(), req.GetClientUserId(), nil)
	if err != nil {
		return nil, err
	}
	return &linkdv1.ExchangePublicTokenResponse{Item: item}, nil
}

// GetItem returns one Item.
func (s *Server) GetItem(ctx context.Context, req *linkdv1.GetItemRequest) (*linkdv1.GetItemResponse, error) {
	if err := checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"); err != nil {
		return nil, err
	}
	item, err := s.store.GetItem(ctx, req.GetItemId())
	if err != nil {
		return nil, err
	}
	if err := ownedBy(ctx, item.GetClientUserId(), errItemNotFound()); err != nil {
		return nil, err
	}
	return &linkdv1.GetItemResponse{Item: item}, nil
}

// ListItems returns a user's Items, oldest first, only those in one of
// the requested statuses when any is given.
func (s *Server) ListItems(ctx context.Context, req *linkdv1.ListItemsRequest) (*linkdv1.ListItemsResponse, error) {
	if err := actFor(ctx, &req.ClientUserId); err != nil {
		return nil, err
	}
	if err := checkClientUserID("client_user_id", req.GetClientUserId()); err != nil {
		return nil, err
	}
	for i, st := range req.GetStatuses() {
		if _, known := linkdv1.ItemStatus_name[int32(st)]; !known || st == linkdv1.ItemStatus_ITEM_STATUS_UNSPECIFIED {
			return nil, linkd.InvalidField(fmt.Sprintf("statuses[%d]", i), "statuses[%d] is not an ItemStatus", i)
		}
	}
	items, err := s.store.ListItems(ctx, req.GetClientUserId())
	if err != nil {
		return nil, err
	}
	if want := req.GetStatuses(); len(want) > 0 {
		items = slices.DeleteFunc(items, func(it *linkdv1.Item) bool { return !slices.Contains(want, it.GetStatus()) })
	}
	return &linkdv1.ListItemsResponse{Items: items}, nil
}

// RemoveItem removes the Item at Plaid, then from the store. An Item Plaid
// no longer knows is still removed here.
func (s *Server) RemoveItem(ctx context.Context, req *linkdv1.RemoveItemRequest) (*linkdv1.RemoveItemResponse, error) {
	if err := checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"); err != nil {
		return nil, err
	}
	if err := s.authorizeItem(ctx, req.GetItemId()); err != nil {
		return nil, err
	}
	token, err := s.store.AccessToken(ctx, req.GetItemId())
	if err != nil {
		return nil, err
	}
	requestID, err := s.plaid.RemoveItem(ctx, token)
	if err != nil {
		var e *linkd.Error
		if !errors.As(err, &e) || e.Plaid == nil || e.Plaid.ErrorCode != "ITEM_NOT_FOUND" {
			s.noteItemError(ctx, req.GetItemId(), err)
			return nil, err
		}
		requestID = e.Plaid.RequestID
		s.log.WarnContext(ctx, "item already gone at Plaid; removing it here", "item_id", req.GetItemId())
	}
	if err := s.store.DeleteItem(ctx, req.GetItemId()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "item removed", "item_id", req.GetItemId(), "plaid_request_id", requestID)
	return &linkdv1.RemoveItemResponse{ItemId: req.GetItemId(), RequestId: requestID}, nil
}

// GetLinkSession returns what was recorded for a Link session.
func (s *Server) GetLinkSession(ctx context.Context, req *linkdv1.GetLinkSessionRequest) (*linkdv1.GetLinkSessionResponse, error) {
	if err := checkPattern("link_session_id", req.GetLinkSessionId(), plaidIDPattern, "a Link session id"); err != nil {
		return nil, err
	}
	sess, err := s.store.GetLinkSession(ctx, req.GetLinkSessionId())
	if err != nil {
		return nil, err
	}
	if err := ownedBy(ctx, sess.GetClientUserId(), errSessionNotFound()); err != nil {
		return nil, err
	}
	return &linkdv1.GetLinkSessionResponse{Session: sess}, nil
}

// CreateSandboxPublicToken mints a sandbox public token for an Item with
// the default webhook URL; refused against Plaid production.
func (s *Server) CreateSandboxPublicToken(ctx context.Context, req *linkdv1.CreateSandboxPublicTokenRequest) (*linkdv1.CreateSandboxPublicTokenResponse, error) {
	if s.plaid.Environment() == linkd.PlaidProduction {
		return nil, linkd.Errorf(linkd.EPRECONDITION, "sandbox public tokens cannot be created against Plaid production")
	}
	if err := firstError(
		checkPattern("institution_id", req.GetInstitutionId(), plaidIDPattern, "a Plaid institution_id"),
		checkEach("initial_products", req.GetInitialProducts(), productPattern, "a Plaid product name"),
	); err != nil {
		return nil, err
	}
	products := orSlice(req.GetInitialProducts(), s.defaults.Products)
	publicToken, requestID, err := s.plaid.CreateSandboxPublicToken(ctx, req.GetInstitutionId(), products, s.defaults.Webhook)
	if err != nil {
		return nil, err
	}
	return &linkdv1.CreateSandboxPublicTokenResponse{PublicToken: publicToken, RequestId: requestID}, nil
}

// ResetSandboxItemLogin resets a sandbox Item's login at Plaid; refused
// against Plaid production. The Item's status here is left alone: linkd
// learns of the reset the way it would of a real one.
func (s *Server) ResetSandboxItemLogin(ctx context.Context, req *linkdv1.ResetSandboxItemLoginRequest) (*linkdv1.ResetSandboxItemLoginResponse, error) {
	if s.plaid.Environment() == linkd.PlaidProduction {
		return nil, linkd.Errorf(linkd.EPRECONDITION, "sandbox Items cannot be reset against Plaid production")
	}
	if err := checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"); err != nil {
		return nil, err
	}
	token, err := s.store.AccessToken(ctx, req.GetItemId())
	if err != nil {
		return nil, err
	}
	requestID, err := s.plaid.ResetSandboxItemLogin(ctx, token)
	if err != nil {
		return nil, err
	}
	return &linkdv1.ResetSandboxItemLoginResponse{RequestId: requestID}, nil
}

// FireSandboxWebhook has Plaid's sandbox send an Item's webhook; refused
// against Plaid production.
func (s *Server) FireSandboxWebhook(ctx context.Context, req *linkdv1.FireSandboxWebhookRequest) (*linkdv1.FireSandboxWebhookResponse, error) {
	if s.plaid.Environment() == linkd.PlaidProduction {
		return nil, linkd.Errorf(linkd.EPRECONDITION, "sandbox webhooks cannot be fired against Plaid production")
	}
	if err := firstError(
		checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"),
		checkPattern("webhook_code", req.GetWebhookCode(), webhookCodePattern, "a Plaid webhook_code"),
	); err != nil {
		return nil, err
	}
	token, err := s.store.AccessToken(ctx, req.GetItemId())
	if err != nil {
		return nil, err
	}
	requestID, err := s.plaid.FireSandboxWebhook(ctx, token, req.GetWebhookCode())
	if err != nil {
		return nil, err
	}
	return &linkdv1.FireSandboxWebhookResponse{RequestId: requestID}, nil
}

// or returns v, or def when v is empty.
func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// orSlice returns v, or def when v is empty.
func orSlice(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}
