// Package linkd holds the domain of the linkd service: its errors, the
// secrets it guards, and the interfaces through which the server meets Plaid
// and the store. It imports no adapter; cmd/linkd wires the adapters.
package linkd

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"time"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// AccessToken is a Plaid access token. It formats and logs as a redaction so
// that printing one by mistake leaks nothing; call Reveal to use it.
type AccessToken struct{ token string }

// NewAccessToken wraps a plain access token.
func NewAccessToken(token string) AccessToken { return AccessToken{token: token} }

// Reveal returns the plain token, for the Plaid client and the sealer only.
func (t AccessToken) Reveal() string { return t.token }

// IsZero reports whether the token is empty.
func (t AccessToken) IsZero() bool { return t.token == "" }

// String implements fmt.Stringer with a redaction.
func (t AccessToken) String() string { return "[access token redacted]" }

// GoString implements fmt.GoStringer with a redaction, for %#v.
func (t AccessToken) GoString() string { return "[access token redacted]" }

// LogValue implements slog.LogValuer with a redaction.
func (t AccessToken) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// RedirectSessionID returns the link_session_id of whichever result r
// has, or "" when it has none.
func RedirectSessionID(r *linkdv1.WebviewRedirect) string {
	switch res := r.GetResult().(type) {
	case *linkdv1.WebviewRedirect_Connected:
		return res.Connected.GetLinkSessionId()
	case *linkdv1.WebviewRedirect_Exit:
		return res.Exit.GetLinkSessionId()
	case *linkdv1.WebviewRedirect_Event:
		return res.Event.GetLinkSessionId()
	}
	return ""
}

// RedirectLinkError returns the Link error an exit or event redirect r
// reports, or nil (a connected redirect, or none reported).
func RedirectLinkError(r *linkdv1.WebviewRedirect) *linkdv1.LinkError {
	switch res := r.GetResult().(type) {
	case *linkdv1.WebviewRedirect_Exit:
		return res.Exit.GetError()
	case *linkdv1.WebviewRedirect_Event:
		return res.Event.GetError()
	}
	return nil
}

// RenewsLinkToken reports whether a redirect reports a dead link token
// (INVALID_LINK_TOKEN, in an exit or an event): linkd answers it with a
// fresh link token made at Plaid.
func RenewsLinkToken(r *linkdv1.WebviewRedirect) bool {
	return RedirectLinkError(r).GetErrorCode() == "INVALID_LINK_TOKEN"
}

// Plaid environments linkd talks to.
const (
	PlaidSandbox    = "sandbox"
	PlaidProduction = "production"
)

// LinkTokenOptions is what linkd asks Plaid's /link/token/create for.
type LinkTokenOptions struct {
	ClientUserID       string
	ClientName         string
	Products           []string
	CountryCodes       []string
	Language           string
	RedirectURI        string
	AndroidPackageName string
	Webhook            string
	// AccessToken, when set, makes an update-mode token for its Item:
	// Products are then not sent.
	AccessToken AccessToken
	// HostedLink, when not nil (even empty), asks for Hosted Link.
	HostedLink *linkdv1.HostedLink
	// User is Plaid's prefill; nil sends none.
	User *linkdv1.LinkTokenUser
	// The product lists beside Products, in Plaid's names.
	OptionalProducts, RequiredIfSupportedProducts, AdditionalConsentedProducts []string
	// AccountFilters by account type, as Plaid's account_filters.
	AccountFilters map[string]*linkdv1.AccountSubtypes
	// LinkCustomizationName names a Dashboard customization.
	LinkCustomizationName string
	// DaysRequested is transactions.days_requested; 0 sends none.
	DaysRequested int32
	// AccountSelectionEnabled is update.account_selection_enabled.
	AccountSelectionEnabled bool
	// InstitutionID opens Link at that institution.
	InstitutionID string
}

// LinkTokenResult is Plaid's answer to /link/token/create.
type LinkTokenResult struct {
	LinkToken  string
	Expiration time.Time
	RequestID  string
	// HostedLinkURL is set for a Hosted Link token.
	HostedLinkURL string
}

// LinkTokenStatus is Plaid's answer to /link/token/get.
type LinkTokenStatus struct {
	LinkToken             string
	CreatedAt, Expiration time.Time
	Sessions              []LinkTokenSession
	RequestID             string
}

// LinkTokenSession is one Link session of a link token as /link/token/get
// reports it.
type LinkTokenSession struct {
	LinkSessionID string
	// StartedAt and FinishedAt are zero when Plaid gives none; a session
	// without FinishedAt is still open.
	StartedAt, FinishedAt time.Time
	// ItemAdds are results.item_add_results, each with its public token,
	// institution, accounts and this session's id.
	ItemAdds []*linkdv1.ConnectedResult
	// Exit is set when the session ended without an Item.
	Exit *linkdv1.ExitResult
	// Events are the session's events, with Plaid's event_id.
	Events []*linkdv1.LinkEvent
}

// Finished reports whether Plaid says the session ended.
func (s LinkTokenSession) Finished() bool {
	return !s.FinishedAt.IsZero() || len(s.ItemAdds) > 0 || s.Exit != nil
}

// SandboxLink completes Link sessions as a user would, for tests that must
// not click through a page. Only the emulator has one.
type SandboxLink interface {
	// CompleteLinkSession ends a new Link session of linkToken: linked at
	// institutionID (the update-mode Item's own when empty) when
	// exitStatus is empty, else exited with exitStatus. It fires what
	// Plaid would and returns the session's id; EINVALID for an unknown or
	// expired token or an unknown institution.
	CompleteLinkSession(ctx context.Context, linkToken, institutionID, exitStatus string) (linkSessionID string, err error)
}

// SandboxLogin is the sandbox test login an Item is created with, Plaid's
// options.override_username and override_password; empty fields take
// Plaid's defaults, user_good and pass_good. Plaid's sandbox test
// credentials make Items in particular states: user_good /
// microdeposits_good at Houndstooth Bank (ins_109512), for one, an account
// pending automated micro-deposit verification.
type SandboxLogin struct {
	Username string
	Password string
}

// EmulatorItems puts Items in states Plaid's sandbox cannot produce. Only
// the emulator has one.
type EmulatorItems interface {
	// SetItemState puts the Item of token in state (one of
	// EmulatorItemStates; reason for PENDING_DISCONNECT) and sends the
	// webhook Plaid would. EINVALID for a state the Item cannot take
	// (LOGIN_REPAIRED on an Item whose login is not broken).
	SetItemState(ctx context.Context, token AccessToken, state, reason string) error
}

// ExchangeResult is Plaid's answer to /item/public_token/exchange.
type ExchangeResult struct {
	AccessToken AccessToken
	ItemID      string
	RequestID   string
}

// ItemAccounts is what Plaid knows of an Item: /accounts/get (and the
// institution name, where Plaid gives it).
type ItemAccounts struct {
	ItemID          string
	InstitutionID   string
	InstitutionName string
	Accounts        []*linkdv1.Account
	// Webhook is the Item's webhook URL at Plaid; empty for none.
	Webhook   string
	RequestID string
	// ReadAt is when linkd asked (its clock, before the call); zero when
	// unknown. A webhook applied at or after it may have changed what
	// Plaid answered (WebhookSince), and the answer is read again.
	ReadAt time.Time
	// Version is the Item as linkd read it before asking (VersionOf);
	// zero when it did not, and ReadAt tells of webhooks instead
	// (WebhookAppliedSince).
	Version ItemVersion
}

// WebhookKey is a public key Plaid signs webhooks with, from
// /webhook_verification_key/get.
type WebhookKey struct {
	// KeyID is the JWT header's kid.
	KeyID string
	// Alg is the JWK's alg; Plaid uses ES256.
	Alg string
	// Key is the P-256 public key.
	Key *ecdsa.PublicKey
	// ExpiredAt is when Plaid retired the key; zero while it is current.
	ExpiredAt time.Time
}

// Plaid is the part of Plaid's API linkd uses. Every method returns an
// *Error: EINVALID, EPRECONDITION, ERATELIMIT, EUNAVAILABLE, ... with Plaid
// set when Plaid answered with an error body.
type Plaid interface {
	// Environment returns PlaidSandbox or PlaidProduction.
	Environment() string
	// CreateLinkToken calls /link/token/create.
	CreateLinkToken(ctx context.Context, opts LinkTokenOptions) (LinkTokenResult, error)
	// GetLinkToken calls /link/token/get: the token's sessions and their
	// results (public tokens included: handle as secrets).
	GetLinkToken(ctx context.Context, linkToken string) (LinkTokenStatus, error)
	// ExchangePublicToken calls /item/public_token/exchange. Not safe to repeat:
	// Plaid spends the public token.
	ExchangePublicToken(ctx context.Context, publicToken string) (ExchangeResult, error)
	// GetAccounts calls /accounts/get (and /item/get for the institution).
	GetAccounts(ctx context.Context, token AccessToken) (ItemAccounts, error)
	// GetItem calls /item/get: Plaid's view of an Item's health.
	GetItem(ctx context.Context, token AccessToken) (ItemState, error)
	// UpdateItemWebhook calls /item/webhook/update, pointing the Item's
	// webhooks at url, and returns Plaid's request_id.
	UpdateItemWebhook(ctx context.Context, token AccessToken, url string) (string, error)
	// RemoveItem calls /item/remove and returns Plaid's request_id.
	RemoveItem(ctx context.Context, token AccessToken) (string, error)
	// CreateSandboxPublicToken calls /sandbox/public_token/create, with the
	// Item's webhook URL when webhook is set and the test login, and
	// returns the public token and Plaid's request_id.
	CreateSandboxPublicToken(ctx context.Context, institutionID string, initialProducts []string, webhook string, login SandboxLogin) (publicToken, requestID string, err error)
	// ResetSandboxItemLogin calls /sandbox/item/reset_login and returns
	// Plaid's request_id.
	ResetSandboxItemLogin(ctx context.Context, token AccessToken) (string, error)
	// FireSandboxWebhook calls /sandbox/item/fire_webhook with webhookType
	// ("" sends none) and webhookCode, and returns Plaid's request_id.
	FireSandboxWebhook(ctx context.Context, token AccessToken, webhookType, webhookCode string) (string, error)
	// SetSandboxVerificationStatus calls
	// /sandbox/item/set_verification_status and returns Plaid's request_id.
	SetSandboxVerificationStatus(ctx context.Context, token AccessToken, accountID, status string) (string, error)
	// WebhookVerificationKey calls /webhook_verification_key/get.
	WebhookVerificationKey(ctx context.Context, keyID string) (WebhookKey, error)
}
