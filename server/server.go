// Package server implements linkd's LinkService over gRPC and, through
// grpc-gateway, over REST. It meets Plaid and the store through the
// interfaces of package linkd; cmd/linkd wires the real ones.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/redirect"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/webhook"
)

// Config is what a Server needs.
type Config struct {
	// Service runs the use cases the RPCs map onto.
	Service *service.Service
	// Webhooks verifies Plaid's webhook deliveries.
	Webhooks *webhook.Verifier
	// Logger receives structured logs; never a token.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnWebhook, when set, counts each webhook delivery by its type and
	// verification result (WebhookVerified, WebhookRefused,
	// WebhookUnavailable).
	OnWebhook func(webhookType, verification string)
}

// Server implements linkdv1.LinkServiceServer: it validates requests,
// keeps each caller to its own records (authorize.go), maps protos onto
// the service and back, and leaves the flows to the service.
type Server struct {
	linkdv1.UnimplementedLinkServiceServer

	svc       *service.Service
	webhooks  *webhook.Verifier
	log       *slog.Logger
	now       func() time.Time
	onWebhook func(webhookType, verification string)
}

var _ linkdv1.LinkServiceServer = (*Server)(nil)

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{svc: cfg.Service, webhooks: cfg.Webhooks, log: cfg.Logger, now: cfg.Now, onWebhook: cfg.OnWebhook}
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
		checkRedirectURI(req.GetRedirectUri(), s.svc.Environment()),
		checkOAuthTarget(req.GetRedirectUri(), req.GetAndroidPackageName()),
		checkWebhookURL("webhook", req.GetWebhook()),
		checkOptionalPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"),
	); err != nil {
		return nil, err
	}
	if req.GetItemId() != "" && len(req.GetProducts()) > 0 {
		return nil, linkd.InvalidField("products", "products must be empty in update mode (with item_id): the Item keeps its products")
	}
	if err := checkLinkTokenOptions(req); err != nil {
		return nil, err
	}
	tok, err := s.svc.IssueLinkToken(ctx, req)
	if err != nil {
		return nil, err
	}
	return &linkdv1.CreateLinkTokenResponse{LinkToken: tok}, nil
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
	// A redirect is filed under its session, which GetLinkSession must be
	// able to name again. Only an exit may come without one (Link closed,
	// or refused its token, before a session began): it still gets what
	// an exit gets (a fresh token for a dead one, an update-mode Item's
	// status) and is filed nowhere.
	sessionCheck := checkPattern
	if r.GetExit() != nil {
		sessionCheck = checkOptionalPattern
	}
	if err := sessionCheck("url.link_session_id", linkd.RedirectSessionID(r), plaidIDPattern, "a Link session id"); err != nil {
		return nil, err
	}
	// A connected redirect's institution_id becomes the Item's, which every
	// store indexes (Postgres in a text column, where a NUL or a few KiB
	// fail the insert after Plaid billed the exchange): only Plaid's ids.
	if err := checkOptionalPattern("url.institution_id", r.GetConnected().GetInstitutionId(), plaidIDPattern, "a Plaid institution_id"); err != nil {
		return nil, err
	}
	// A public token to exchange has Plaid's format, as ExchangePublicToken
	// checks it: anything else is refused here, not sent to Plaid.
	if c := r.GetConnected(); c != nil && tok.GetItemId() == "" {
		if err := checkPattern("url.public_token", c.GetPublicToken(), publicTokenPattern, "a Plaid public token"); err != nil {
			return nil, err
		}
	}
	out, err := s.svc.SubmitRedirect(ctx, tok, r)
	if err != nil {
		return nil, inRedirectURL(err)
	}
	resp := &linkdv1.SubmitRedirectResponse{Item: out.Item, NewLinkToken: out.NewLinkToken}
	switch res := r.GetResult().(type) {
	case *linkdv1.WebviewRedirect_Connected:
		resp.Result = &linkdv1.SubmitRedirectResponse_Connected{Connected: res.Connected}
	case *linkdv1.WebviewRedirect_Exit:
		resp.Result = &linkdv1.SubmitRedirectResponse_Exit{Exit: res.Exit}
	case *linkdv1.WebviewRedirect_Event:
		resp.Result = &linkdv1.SubmitRedirectResponse_Event{Event: res.Event}
	}
	return resp, nil
}

// inRedirectURL names a parameter of the redirect that err is about (a
// public token Plaid refused, an institution it does not know) as
// SubmitRedirect's request has it, inside url; other errors are returned
// as they are.
func inRedirectURL(err error) error {
	var e *linkd.Error
	if !errors.As(err, &e) || (e.Field != "public_token" && e.Field != "institution_id") {
		return err
	}
	inURL := *e
	inURL.Field = "url." + e.Field
	return &inURL
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
	item, err := s.svc.ExchangePublicToken(ctx, req.GetPublicToken(), req.GetClientUserId())
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
	item, err := s.svc.GetItem(ctx, req.GetItemId())
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
	size, err := pageSize(req.GetPageSize(), MaxItemsPage)
	if err != nil {
		return nil, err
	}
	items, err := s.svc.ListItems(ctx, req.GetClientUserId(), req.GetStatuses())
	if err != nil {
		return nil, err
	}
	page, next, err := pageItems(items, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &linkdv1.ListItemsResponse{Items: page, NextPageToken: next}, nil
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
	requestID, err := s.svc.RemoveItem(ctx, req.GetItemId())
	if err != nil {
		return nil, err
	}
	return &linkdv1.RemoveItemResponse{ItemId: req.GetItemId(), RequestId: requestID}, nil
}

// GetLinkSession returns what was recorded for a Link session.
func (s *Server) GetLinkSession(ctx context.Context, req *linkdv1.GetLinkSessionRequest) (*linkdv1.GetLinkSessionResponse, error) {
	if err := checkPattern("link_session_id", req.GetLinkSessionId(), plaidIDPattern, "a Link session id"); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize(), MaxEventsPage)
	if err != nil {
		return nil, err
	}
	sess, err := s.svc.GetLinkSession(ctx, req.GetLinkSessionId())
	if err != nil {
		return nil, err
	}
	if err := ownedBy(ctx, sess.GetClientUserId(), errSessionNotFound()); err != nil {
		return nil, err
	}
	next, err := pageEvents(sess, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	setNextPageHeader(ctx, next)
	return &linkdv1.GetLinkSessionResponse{Session: sess, NextPageToken: next}, nil
}

// CreateSandboxPublicToken mints a sandbox public token for an Item with
// the default webhook URL; refused against Plaid production.
func (s *Server) CreateSandboxPublicToken(ctx context.Context, req *linkdv1.CreateSandboxPublicTokenRequest) (*linkdv1.CreateSandboxPublicTokenResponse, error) {
	if err := firstError(
		checkPattern("institution_id", req.GetInstitutionId(), plaidIDPattern, "a Plaid institution_id"),
		checkEach("initial_products", req.GetInitialProducts(), productPattern, "a Plaid product name"),
		checkOptionalPattern("override_username", req.GetOverrideUsername(), sandboxLoginPattern, "a sandbox test username"),
		checkOptionalPattern("override_password", req.GetOverridePassword(), sandboxLoginPattern, "a sandbox test password"),
	); err != nil {
		return nil, err
	}
	login := linkd.SandboxLogin{Username: req.GetOverrideUsername(), Password: req.GetOverridePassword()}
	publicToken, requestID, err := s.svc.CreateSandboxPublicToken(ctx, req.GetInstitutionId(), req.GetInitialProducts(), login)
	if err != nil {
		return nil, err
	}
	return &linkdv1.CreateSandboxPublicTokenResponse{PublicToken: publicToken, RequestId: requestID}, nil
}

// ResetSandboxItemLogin resets a sandbox Item's login at Plaid; refused
// against Plaid production. The Item's status here is left alone: linkd
// learns of the reset the way it would of a real one.
func (s *Server) ResetSandboxItemLogin(ctx context.Context, req *linkdv1.ResetSandboxItemLoginRequest) (*linkdv1.ResetSandboxItemLoginResponse, error) {
	if err := checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"); err != nil {
		return nil, err
	}
	requestID, err := s.svc.ResetSandboxItemLogin(ctx, req.GetItemId())
	if err != nil {
		return nil, err
	}
	return &linkdv1.ResetSandboxItemLoginResponse{RequestId: requestID}, nil
}

// FireSandboxWebhook has Plaid's sandbox send an Item's webhook; refused
// against Plaid production.
func (s *Server) FireSandboxWebhook(ctx context.Context, req *linkdv1.FireSandboxWebhookRequest) (*linkdv1.FireSandboxWebhookResponse, error) {
	if err := firstError(
		checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"),
		checkPattern("webhook_code", req.GetWebhookCode(), webhookCodePattern, "a Plaid webhook_code"),
		checkOptionalPattern("webhook_type", req.GetWebhookType(), webhookCodePattern, "a Plaid webhook_type"),
	); err != nil {
		return nil, err
	}
	requestID, err := s.svc.FireSandboxWebhook(ctx, req.GetItemId(), req.GetWebhookType(), req.GetWebhookCode())
	if err != nil {
		return nil, err
	}
	return &linkdv1.FireSandboxWebhookResponse{RequestId: requestID}, nil
}

// SetSandboxVerificationStatus has Plaid's sandbox end an account's
// automated micro-deposit verification; refused against Plaid production.
func (s *Server) SetSandboxVerificationStatus(ctx context.Context, req *linkdv1.SetSandboxVerificationStatusRequest) (*linkdv1.SetSandboxVerificationStatusResponse, error) {
	if err := firstError(
		checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"),
		checkPattern("account_id", req.GetAccountId(), plaidIDPattern, "a Plaid account_id"),
	); err != nil {
		return nil, err
	}
	requestID, err := s.svc.SetSandboxVerificationStatus(ctx, req.GetItemId(), req.GetAccountId(), req.GetVerificationStatus())
	if err != nil {
		return nil, err
	}
	return &linkdv1.SetSandboxVerificationStatusResponse{RequestId: requestID}, nil
}

// SetEmulatorItemState has the embedded emulator put an Item in a state
// Plaid's sandbox cannot produce; refused unless linkd runs the emulator.
func (s *Server) SetEmulatorItemState(ctx context.Context, req *linkdv1.SetEmulatorItemStateRequest) (*linkdv1.SetEmulatorItemStateResponse, error) {
	if err := checkPattern("item_id", req.GetItemId(), plaidIDPattern, "a Plaid item_id"); err != nil {
		return nil, err
	}
	if err := s.svc.SetEmulatorItemState(ctx, req.GetItemId(), req.GetState(), req.GetReason()); err != nil {
		return nil, err
	}
	return &linkdv1.SetEmulatorItemStateResponse{}, nil
}

// GetLinkToken returns a link token the caller may use, with its state and
// its sessions' outcomes from Plaid's /link/token/get.
func (s *Server) GetLinkToken(ctx context.Context, req *linkdv1.GetLinkTokenRequest) (*linkdv1.GetLinkTokenResponse, error) {
	tok, err := s.ownLinkToken(ctx, req.GetLinkToken(), req.GetClientUserId())
	if err != nil {
		return nil, err
	}
	return s.svc.LinkTokenStatus(ctx, tok)
}

// CompleteSandboxLinkSession completes a Link session of a link token the
// caller may use, as the emulated user would.
func (s *Server) CompleteSandboxLinkSession(ctx context.Context, req *linkdv1.CompleteSandboxLinkSessionRequest) (*linkdv1.CompleteSandboxLinkSessionResponse, error) {
	if err := firstError(
		checkPattern("link_token", req.GetLinkToken(), linkTokenPattern, "a Plaid link token"),
		checkOptionalPattern("institution_id", req.GetInstitutionId(), institutionIDPattern, "a Plaid institution_id"),
		checkOptionalPattern("exit_status", req.GetExitStatus(), exitStatusPattern, "one of Link's exit statuses (requires_credentials, requires_code, institution_not_found, ...)"),
	); err != nil {
		return nil, err
	}
	tok, err := s.ownLinkToken(ctx, req.GetLinkToken(), "")
	if err != nil {
		return nil, err
	}
	id, err := s.svc.CompleteSandboxLinkSession(ctx, tok, req.GetInstitutionId(), req.GetExitStatus())
	if err != nil {
		return nil, err
	}
	return &linkdv1.CompleteSandboxLinkSessionResponse{LinkSessionId: id}, nil
}

// ownLinkToken checks link_token and returns it when the caller may use
// it; a service naming another user in clientUserID gets what a token
// linkd never issued gets.
func (s *Server) ownLinkToken(ctx context.Context, linkToken, clientUserID string) (*storagev1.StoredLinkToken, error) {
	if err := firstError(
		checkPattern("link_token", linkToken, linkTokenPattern, "a Plaid link token"),
		checkOptionalUserID("client_user_id", clientUserID),
	); err != nil {
		return nil, err
	}
	if err := actFor(ctx, &clientUserID); err != nil {
		return nil, err
	}
	tok, err := s.linkTokenFor(ctx, linkToken)
	if err == nil && clientUserID != "" && clientUserID != tok.GetClientUserId() {
		err = linkd.InvalidField("link_token", "link_token was not issued by this linkd")
	}
	return tok, err
}
