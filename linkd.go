// Package linkd holds the domain of the linkd service: its errors, the
// secrets it guards, and the interfaces through which the server meets Plaid
// and the store. It imports no adapter; cmd/linkd wires the adapters.
package linkd

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"time"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
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
}

// LinkTokenResult is Plaid's answer to /link/token/create.
type LinkTokenResult struct {
	LinkToken  string
	Expiration time.Time
	RequestID  string
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
	RequestID       string
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
	// ExchangePublicToken calls /item/public_token/exchange. Not safe to repeat:
	// Plaid spends the public token.
	ExchangePublicToken(ctx context.Context, publicToken string) (ExchangeResult, error)
	// GetAccounts calls /accounts/get (and /item/get for the institution).
	GetAccounts(ctx context.Context, token AccessToken) (ItemAccounts, error)
	// RemoveItem calls /item/remove and returns Plaid's request_id.
	RemoveItem(ctx context.Context, token AccessToken) (string, error)
	// CreateSandboxPublicToken calls /sandbox/public_token/create, with the
	// Item's webhook URL when webhook is set, and returns the public token
	// and Plaid's request_id.
	CreateSandboxPublicToken(ctx context.Context, institutionID string, initialProducts []string, webhook string) (publicToken, requestID string, err error)
	// ResetSandboxItemLogin calls /sandbox/item/reset_login and returns
	// Plaid's request_id.
	ResetSandboxItemLogin(ctx context.Context, token AccessToken) (string, error)
	// FireSandboxWebhook calls /sandbox/item/fire_webhook and returns Plaid's
	// request_id.
	FireSandboxWebhook(ctx context.Context, token AccessToken, webhookCode string) (string, error)
	// WebhookVerificationKey calls /webhook_verification_key/get.
	WebhookVerificationKey(ctx context.Context, keyID string) (WebhookKey, error)
}

// Store keeps linkd's state. Every method is one transaction, durable
// (committed with fsync) before it returns, and returns an *Error: ENOTFOUND
// for a missing record, ECONFLICT for a clash, EINTERNAL otherwise. A
// distributed backend can implement it later; store/ implements it on bbolt.
type Store interface {
	// PutLinkToken records a link token linkd issued.
	PutLinkToken(ctx context.Context, t *storagev1.StoredLinkToken) error
	// GetLinkToken returns a link token linkd issued, or ENOTFOUND.
	GetLinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error)
	// RecordRedirect files a redirect under its link_session_id, binding the
	// session to linkToken and clientUserID on first sight. Events are kept
	// ordered by timestamp; an event equal to one already recorded (a client
	// retry) is not added twice. A connected or exit redirect sets the
	// session's outcome (a connected outcome is kept without its public
	// token); a different second outcome, or a session already bound to
	// another link token, is ECONFLICT. A redirect with no link_session_id is
	// EINVALID naming link_session_id.
	RecordRedirect(ctx context.Context, linkToken, clientUserID string, r *linkdv1.WebviewRedirect) error
	// ItemForPublicToken returns the Item a public token was already
	// exchanged for, or ENOTFOUND. The token is looked up by its SHA-256.
	ItemForPublicToken(ctx context.Context, publicToken string) (*linkdv1.Item, error)
	// PutItem stores a new Item and, apart from it, its access token sealed
	// with the current master key. When publicToken is not empty it also
	// records that the token was spent on this Item, and when the Item has a
	// link_session_id it links the session to it. All in one transaction.
	// ECONFLICT if the item_id exists.
	PutItem(ctx context.Context, item *linkdv1.Item, token AccessToken, publicToken string) error
	// BeginExchange marks an exchange of publicToken as sent-but-unfinished
	// for clientUserID, and reports whether an earlier exchange of it was
	// already so marked (its outcome never seen). ECONFLICT when the mark
	// belongs to another user. PutItem with the token clears the mark.
	BeginExchange(ctx context.Context, publicToken, clientUserID string) (earlier bool, err error)
	// AbandonExchange clears the mark of an exchange that surely failed
	// (Plaid answered with an error, or was never reached).
	AbandonExchange(ctx context.Context, publicToken string) error
	// GetItem returns an Item, or ENOTFOUND.
	GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error)
	// ListItems returns a user's Items, oldest first; none is not an error.
	ListItems(ctx context.Context, clientUserID string) ([]*linkdv1.Item, error)
	// AccessToken unseals and returns an Item's access token, or ENOTFOUND.
	AccessToken(ctx context.Context, itemID string) (AccessToken, error)
	// DeleteItem deletes an Item, its sealed token and its index entries, or
	// returns ENOTFOUND.
	DeleteItem(ctx context.Context, itemID string) error
	// SetItemStatus sets an Item's status and error code, stamping
	// status_changed_at when the status changes, and returns the Item; or
	// ENOTFOUND. A change that would hide a worse state is ignored:
	// REVOKED is final, and PENDING_* never replaces LOGIN_REQUIRED or ERROR.
	SetItemStatus(ctx context.Context, itemID string, status linkdv1.ItemStatus, errorCode string) (*linkdv1.Item, error)
	// SetItemDetails replaces an Item's institution (where the new value is
	// not empty) and its accounts (where the list is not empty), and returns
	// the Item; or ENOTFOUND.
	SetItemDetails(ctx context.Context, itemID, institutionID, institutionName string, accounts []*linkdv1.Account) (*linkdv1.Item, error)
	// ItemsAtInstitution returns every user's Items at an institution, oldest
	// first; none is not an error.
	ItemsAtInstitution(ctx context.Context, institutionID string) ([]*linkdv1.Item, error)
	// RecordWebhook keeps a verified Plaid webhook and, when status is set
	// and the webhook names a stored Item, moves the Item to status with the
	// webhook's error_code; it returns that Item, or nil.
	RecordWebhook(ctx context.Context, w *storagev1.StoredWebhook, status linkdv1.ItemStatus) (*linkdv1.Item, error)
	// GetLinkSession returns a Link session, or ENOTFOUND.
	GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error)
	// LinkSessions returns the sessions that started in [since, until): by
	// their earliest event timestamp, else when linkd first saw them.
	LinkSessions(ctx context.Context, since, until time.Time) ([]*linkdv1.LinkSession, error)
	// Close releases the store.
	Close() error
}
