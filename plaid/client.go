// Package plaid is linkd's Plaid client. It implements linkd.Plaid on
// plaid-go and is the only package in linkd that imports plaid-go: every
// plaid-go type and error stops here, converted to linkd's types and to
// *linkd.Error.
package plaid

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	plaidgo "github.com/plaid/plaid-go/v42/plaid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// DefaultTimeout bounds one Plaid request when Config.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// maxConnectTimeout bounds dialing and the TLS handshake.
const maxConnectTimeout = 10 * time.Second

// maxIdleConns bounds the connections to Plaid kept open between calls.
const maxIdleConns = 512

// Config configures a Client. Field names in errors are the environment
// variables cmd/linkd reads them from.
type Config struct {
	// ClientID and Secret are linkd's Plaid API keys.
	ClientID string
	Secret   string
	// Env is linkd.PlaidSandbox or linkd.PlaidProduction.
	Env string
	// BaseURL, when set, replaces Env's Plaid URL (to talk to plaidemu).
	BaseURL string
	// Timeout bounds one HTTP request to Plaid; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts bounds how often a retryable call is sent; 0 means
	// DefaultMaxAttempts, 1 means no retries.
	MaxAttempts int
	// Observe, when set, is called after every HTTP request to Plaid
	// (retries included), for metrics. It must be quick.
	Observe func(Call)
	// WrapTransport, when set, wraps the HTTP transport, e.g. to trace
	// each request. It sees requests before Observe does.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Transport, when set, carries the requests instead of a pool of HTTP
	// connections to BaseURL: an emulator in this process
	// (plaidemu.Emulator.Transport). Observe and WrapTransport apply as
	// they do to connections.
	Transport http.RoundTripper
}

// Client calls Plaid. It is safe for concurrent use.
type Client struct {
	env         string
	secret      string
	maxAttempts int
	// timeout bounds each attempt of a call (see do).
	timeout time.Duration
	// transport is the bottom transport, whatever wraps it (a tracing
	// one may not pass CloseIdleConnections on); nil with Config.Transport.
	transport *http.Transport
	api       *plaidgo.PlaidApiService
}

var _ linkd.Plaid = (*Client)(nil)

// New returns a Client for cfg. It returns an EINVALID *linkd.Error naming
// PLAID_ENV, PLAID_CLIENT_ID, PLAID_SECRET, PLAID_BASE_URL or PLAID_TIMEOUT
// when that setting is missing or malformed. It does not call Plaid.
func New(cfg Config) (*Client, error) {
	var baseURL string
	switch cfg.Env {
	case linkd.PlaidSandbox:
		baseURL = string(plaidgo.Sandbox)
	case linkd.PlaidProduction:
		baseURL = string(plaidgo.Production)
	default:
		return nil, linkd.InvalidField("PLAID_ENV", "must be %q or %q, not %q", linkd.PlaidSandbox, linkd.PlaidProduction, cfg.Env)
	}
	switch {
	case cfg.ClientID == "":
		return nil, linkd.InvalidField("PLAID_CLIENT_ID", "is required")
	case cfg.Secret == "":
		return nil, linkd.InvalidField("PLAID_SECRET", "is required")
	case cfg.Timeout < 0:
		return nil, linkd.InvalidField("PLAID_TIMEOUT", "must not be negative")
	case cfg.MaxAttempts < 0:
		return nil, linkd.InvalidField("PLAID_MAX_ATTEMPTS", "must not be negative")
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, linkd.InvalidField("PLAID_BASE_URL", "must be an absolute http or https URL without credentials")
		}
		baseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}

	conf := plaidgo.NewConfiguration()
	conf.UseEnvironment(plaidgo.Environment(baseURL))
	// Headers rather than plaid-go's context keys, so no call can forget them.
	conf.AddDefaultHeader("PLAID-CLIENT-ID", cfg.ClientID)
	conf.AddDefaultHeader("PLAID-SECRET", cfg.Secret)
	conf.UserAgent = "linkd (" + conf.UserAgent + ")"
	conf.HTTPClient = newHTTPClient(timeout)
	base := conf.HTTPClient.Transport.(*http.Transport)
	if cfg.Transport != nil {
		conf.HTTPClient.Transport, base = cfg.Transport, nil
	}
	// Every request reports its request_id to the call's logs, metrics or
	// not.
	var rt http.RoundTripper = observeTransport{next: conf.HTTPClient.Transport, observe: cfg.Observe}
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(rt)
	}
	conf.HTTPClient.Transport = rt
	return &Client{
		env:         cfg.Env,
		secret:      cfg.Secret,
		maxAttempts: cfg.MaxAttempts,
		timeout:     timeout,
		transport:   base,
		api:         plaidgo.NewAPIClient(conf).PlaidApi,
	}, nil
}

// newHTTPClient returns an HTTP client whose every stage has a deadline:
// plaid-go's default is http.DefaultClient, which waits forever. The
// whole request's deadline is not http.Client.Timeout but a context
// deadline that do sets on each attempt: the same bound, without the
// timer goroutine net/http starts per request for Client.Timeout (~1% of
// linkd's CPU per connected link).
func newHTTPClient(timeout time.Duration) *http.Client {
	connect := min(timeout, maxConnectTimeout)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   connect,
			ResponseHeaderTimeout: timeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
			// linkd talks to one host. Over HTTP/1.1 (the emulator, a
			// proxy) every concurrent call holds a connection, and one
			// that cannot be kept idle is closed and dialed again by the
			// next call: with 16, 64 callers spent ~10% of linkd's CPU
			// dialing. Over HTTP/2 (Plaid) one connection carries them all.
			MaxIdleConns:        maxIdleConns,
			MaxIdleConnsPerHost: maxIdleConns,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// Close closes idle connections to Plaid, so a stopped linkd leaves no
// connection goroutines behind. Calls in flight finish; it cannot fail.
func (c *Client) Close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// Environment returns linkd.PlaidSandbox or linkd.PlaidProduction, as
// configured (also when BaseURL points elsewhere).
func (c *Client) Environment() string { return c.env }

// CreateLinkToken calls /link/token/create. It returns EINVALID naming the
// field when client_user_id, client_name, language, country_codes or
// products is empty (without calling Plaid), and otherwise the converted
// Plaid or transport error (see convert). With opts.AccessToken it creates
// an update-mode token and sends no products, as Plaid requires.
func (c *Client) CreateLinkToken(ctx context.Context, opts linkd.LinkTokenOptions) (linkd.LinkTokenResult, error) {
	switch {
	case opts.ClientUserID == "":
		return linkd.LinkTokenResult{}, linkd.InvalidField("client_user_id", "is required")
	case opts.ClientName == "":
		return linkd.LinkTokenResult{}, linkd.InvalidField("client_name", "is required")
	case opts.Language == "":
		return linkd.LinkTokenResult{}, linkd.InvalidField("language", "is required")
	case len(opts.CountryCodes) == 0:
		return linkd.LinkTokenResult{}, linkd.InvalidField("country_codes", "needs at least one country code")
	case len(opts.Products) == 0 && opts.AccessToken.IsZero():
		return linkd.LinkTokenResult{}, linkd.InvalidField("products", "needs at least one product")
	}
	countries := make([]plaidgo.CountryCode, len(opts.CountryCodes))
	for i, cc := range opts.CountryCodes {
		countries[i] = plaidgo.CountryCode(cc)
	}
	products := make([]plaidgo.Products, len(opts.Products))
	for i, p := range opts.Products {
		products[i] = plaidgo.Products(p)
	}
	req := plaidgo.NewLinkTokenCreateRequest(opts.ClientName, opts.Language, countries)
	req.SetUser(linkTokenUser(opts.ClientUserID, opts.User))
	setLinkTokenOptions(req, opts)
	if opts.AccessToken.IsZero() {
		req.SetProducts(products)
	} else {
		req.SetAccessToken(opts.AccessToken.Reveal())
	}
	if opts.RedirectURI != "" {
		req.SetRedirectUri(opts.RedirectURI)
	}
	if opts.AndroidPackageName != "" {
		req.SetAndroidPackageName(opts.AndroidPackageName)
	}
	if opts.Webhook != "" {
		req.SetWebhook(opts.Webhook)
	}
	var resp plaidgo.LinkTokenCreateResponse
	if err := c.do(ctx, "/link/token/create", repeatable, []string{opts.AccessToken.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.LinkTokenCreate(ctx).LinkTokenCreateRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return linkd.LinkTokenResult{}, err
	}
	return linkd.LinkTokenResult{
		LinkToken:     resp.GetLinkToken(),
		Expiration:    resp.GetExpiration(),
		RequestID:     resp.GetRequestId(),
		HostedLinkURL: resp.GetHostedLinkUrl(),
	}, nil
}

// linkTokenUser is Plaid's user object: the id and the prefill fields set.
func linkTokenUser(clientUserID string, u *linkdv1.LinkTokenUser) plaidgo.LinkTokenCreateRequestUser {
	out := plaidgo.NewLinkTokenCreateRequestUser(clientUserID)
	if u == nil {
		return *out
	}
	if v := u.GetLegalName(); v != "" {
		out.SetLegalName(v)
	}
	if v := u.GetPhoneNumber(); v != "" {
		out.SetPhoneNumber(v)
	}
	if v := u.GetEmailAddress(); v != "" {
		out.SetEmailAddress(v)
	}
	if v := u.GetDateOfBirth(); v != "" {
		out.SetDateOfBirth(v)
	}
	if a := u.GetAddress(); a != nil {
		addr := plaidgo.NewUserAddress(a.GetCountry())
		setIf := func(v string, set func(string)) {
			if v != "" {
				set(v)
			}
		}
		setIf(a.GetStreet(), addr.SetStreet)
		setIf(a.GetStreet2(), addr.SetStreet2)
		setIf(a.GetCity(), addr.SetCity)
		setIf(a.GetRegion(), addr.SetRegion)
		setIf(a.GetPostalCode(), addr.SetPostalCode)
		out.SetAddress(*addr)
	}
	return *out
}

// setLinkTokenOptions sets on req the options beyond the basics, in
// Plaid's names; unset options are not sent.
func setLinkTokenOptions(req *plaidgo.LinkTokenCreateRequest, opts linkd.LinkTokenOptions) {
	products := func(ps []string) []plaidgo.Products {
		out := make([]plaidgo.Products, len(ps))
		for i, p := range ps {
			out[i] = plaidgo.Products(p)
		}
		return out
	}
	if len(opts.OptionalProducts) > 0 {
		req.SetOptionalProducts(products(opts.OptionalProducts))
	}
	if len(opts.RequiredIfSupportedProducts) > 0 {
		req.SetRequiredIfSupportedProducts(products(opts.RequiredIfSupportedProducts))
	}
	if len(opts.AdditionalConsentedProducts) > 0 {
		req.SetAdditionalConsentedProducts(products(opts.AdditionalConsentedProducts))
	}
	if h := opts.HostedLink; h != nil {
		hl := plaidgo.NewLinkTokenCreateHostedLink()
		if v := h.GetCompletionRedirectUri(); v != "" {
			hl.SetCompletionRedirectUri(v)
		}
		if v := h.GetUrlLifetimeSeconds(); v != 0 {
			hl.SetUrlLifetimeSeconds(v)
		}
		if h.GetIsMobileApp() {
			hl.SetIsMobileApp(true)
		}
		req.SetHostedLink(*hl)
	}
	if len(opts.AccountFilters) > 0 {
		f := plaidgo.NewLinkTokenAccountFilters()
		for typ, subs := range opts.AccountFilters {
			switch typ {
			case "depository":
				f.SetDepository(*plaidgo.NewDepositoryFilter(asSubtypes[plaidgo.DepositoryAccountSubtype](subs)))
			case "credit":
				f.SetCredit(*plaidgo.NewCreditFilter(asSubtypes[plaidgo.CreditAccountSubtype](subs)))
			case "loan":
				f.SetLoan(*plaidgo.NewLoanFilter(asSubtypes[plaidgo.LoanAccountSubtype](subs)))
			case "investment":
				f.SetInvestment(*plaidgo.NewInvestmentFilter(asSubtypes[plaidgo.InvestmentAccountSubtype](subs)))
			case "other":
				f.SetOther(*plaidgo.NewOtherFilter(asSubtypes[plaidgo.OtherAccountSubtype](subs)))
			}
		}
		req.SetAccountFilters(*f)
	}
	if opts.LinkCustomizationName != "" {
		req.SetLinkCustomizationName(opts.LinkCustomizationName)
	}
	if opts.DaysRequested != 0 {
		tx := plaidgo.NewLinkTokenTransactions()
		tx.SetDaysRequested(opts.DaysRequested)
		req.SetTransactions(*tx)
	}
	if opts.AccountSelectionEnabled {
		u := plaidgo.NewLinkTokenCreateRequestUpdate()
		u.SetAccountSelectionEnabled(true)
		req.SetUpdate(*u)
	}
	if opts.InstitutionID != "" {
		req.SetInstitutionId(opts.InstitutionID)
	}
}

// asSubtypes converts account subtypes to plaid-go's type for one account
// type.
func asSubtypes[T ~string](subs *linkdv1.AccountSubtypes) []T {
	out := make([]T, len(subs.GetAccountSubtypes()))
	for i, s := range subs.GetAccountSubtypes() {
		out[i] = T(s)
	}
	return out
}

// GetLinkToken calls /link/token/get. It returns EINVALID naming
// link_token when it is empty (without calling Plaid), and otherwise the
// converted Plaid or transport error. The sessions' item_add_results carry
// public tokens: the caller must never log or store them.
func (c *Client) GetLinkToken(ctx context.Context, linkToken string) (linkd.LinkTokenStatus, error) {
	if linkToken == "" {
		return linkd.LinkTokenStatus{}, linkd.InvalidField("link_token", "is required")
	}
	var resp plaidgo.LinkTokenGetResponse
	if err := c.do(ctx, "/link/token/get", repeatable, nil, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.LinkTokenGet(ctx).LinkTokenGetRequest(*plaidgo.NewLinkTokenGetRequest(linkToken)).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return linkd.LinkTokenStatus{}, err
	}
	out := linkd.LinkTokenStatus{
		LinkToken:  resp.GetLinkToken(),
		CreatedAt:  resp.GetCreatedAt(),
		Expiration: resp.GetExpiration(),
		RequestID:  resp.GetRequestId(),
	}
	for _, ps := range resp.GetLinkSessions() {
		out.Sessions = append(out.Sessions, linkTokenSession(ps))
	}
	return out, nil
}

// linkTokenSession converts one of /link/token/get's link_sessions.
func linkTokenSession(ps plaidgo.LinkTokenGetSessionsResponse) linkd.LinkTokenSession {
	s := linkd.LinkTokenSession{
		LinkSessionID: ps.GetLinkSessionId(),
		StartedAt:     ps.GetStartedAt(),
		FinishedAt:    ps.GetFinishedAt(),
	}
	results := ps.GetResults()
	for _, r := range results.GetItemAddResults() {
		c := &linkdv1.ConnectedResult{PublicToken: r.GetPublicToken(), LinkSessionId: s.LinkSessionID}
		if ins, ok := r.GetInstitutionOk(); ok && ins != nil {
			c.InstitutionId, c.InstitutionName = ins.GetInstitutionId(), ins.GetName()
		}
		for _, a := range r.GetAccounts() {
			c.Accounts = append(c.Accounts, &linkdv1.Account{
				Id: a.GetId(), Name: a.GetName(), Mask: a.GetMask(), Type: a.GetType(), Subtype: a.GetSubtype(),
				VerificationStatus: a.GetVerificationStatus(), ClassType: a.GetClassType(),
			})
		}
		s.ItemAdds = append(s.ItemAdds, c)
	}
	if ex, ok := ps.GetExitOk(); ok && ex != nil && len(s.ItemAdds) == 0 {
		exit := &linkdv1.ExitResult{LinkSessionId: s.LinkSessionID}
		if md, ok := ex.GetMetadataOk(); ok && md != nil {
			exit.Status, exit.RequestId = md.GetStatus(), md.GetRequestId()
			if ins, ok := md.GetInstitutionOk(); ok && ins != nil {
				exit.InstitutionId, exit.InstitutionName = ins.GetInstitutionId(), ins.GetName()
			}
		}
		if pe, ok := ex.GetErrorOk(); ok && pe != nil {
			exit.Error = &linkdv1.LinkError{ErrorType: string(pe.GetErrorType()), ErrorCode: pe.GetErrorCode(),
				ErrorMessage: pe.GetErrorMessage(), DisplayMessage: pe.GetDisplayMessage()}
		}
		s.Exit = exit
	}
	for _, e := range ps.GetEvents() {
		s.Events = append(s.Events, linkEventOf(e.GetEventName(), e.GetEventId(), e.GetTimestamp(), s.LinkSessionID, e.GetEventMetadata()))
	}
	return s
}

// linkEventOf converts one of Plaid's Link events from /link/token/get; a
// timestamp that does not parse is left unset.
func linkEventOf(name, id, timestamp, linkSessionID string, md plaidgo.LinkEventMetadata) *linkdv1.LinkEvent {
	e := &linkdv1.LinkEvent{
		EventName: name, EventId: id, LinkSessionId: linkSessionID,
		ExitStatus: md.GetExitStatus(), InstitutionId: md.GetInstitutionId(), InstitutionName: md.GetInstitutionName(),
		InstitutionSearchQuery: md.GetInstitutionSearchQuery(), MatchReason: md.GetMatchReason(), MfaType: md.GetMfaType(),
		ViewName: md.GetViewName(), RequestId: md.GetRequestId(), Selection: md.GetSelection(),
		RoutingNumber: md.GetRoutingNumber(), AccountNumberMask: md.GetAccountNumberMask(),
	}
	if md.GetErrorCode() != "" || md.GetErrorType() != "" {
		e.Error = &linkdv1.LinkError{ErrorType: md.GetErrorType(), ErrorCode: md.GetErrorCode(), ErrorMessage: md.GetErrorMessage()}
	}
	if t, err := time.Parse(time.RFC3339Nano, timestamp); err == nil {
		e.Timestamp = timestamppb.New(t)
	}
	return e
}

// ExchangePublicToken calls /item/public_token/exchange. It returns EINVALID
// naming public_token when publicToken is empty (without calling Plaid) or
// when Plaid answers INVALID_PUBLIC_TOKEN (unknown, spent or expired),
// EINTERNAL when Plaid's answer lacks the access token or item_id, and
// otherwise the converted Plaid or transport error. Not safe to repeat after
// a success: Plaid spends the public token.
func (c *Client) ExchangePublicToken(ctx context.Context, publicToken string) (linkd.ExchangeResult, error) {
	if publicToken == "" {
		return linkd.ExchangeResult{}, linkd.InvalidField("public_token", "is required")
	}
	req := plaidgo.NewItemPublicTokenExchangeRequest(publicToken)
	var resp plaidgo.ItemPublicTokenExchangeResponse
	if err := c.do(ctx, "/item/public_token/exchange", once, []string{publicToken}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.ItemPublicTokenExchange(ctx).ItemPublicTokenExchangeRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return linkd.ExchangeResult{}, err
	}
	if resp.GetAccessToken() == "" || resp.GetItemId() == "" {
		return linkd.ExchangeResult{}, linkd.Errorf(linkd.EINTERNAL, "Plaid /item/public_token/exchange answered without an access token or item_id (request_id %s)", resp.GetRequestId())
	}
	return linkd.ExchangeResult{
		AccessToken: linkd.NewAccessToken(resp.GetAccessToken()),
		ItemID:      resp.GetItemId(),
		RequestID:   resp.GetRequestId(),
	}, nil
}

// GetAccounts calls /accounts/get, and /item/get as well when Plaid's Item
// names an institution_id but no institution_name. RequestID is that of
// /accounts/get. It returns EINTERNAL for a zero token (without calling
// Plaid) and otherwise the converted Plaid or transport error: notably
// EPRECONDITION for an Item Plaid no longer has (ITEM_NOT_FOUND,
// INVALID_ACCESS_TOKEN) or that needs the user (ITEM_LOGIN_REQUIRED).
func (c *Client) GetAccounts(ctx context.Context, token linkd.AccessToken) (linkd.ItemAccounts, error) {
	if token.IsZero() {
		return linkd.ItemAccounts{}, linkd.Errorf(linkd.EINTERNAL, "GetAccounts called without an access token")
	}
	req := plaidgo.NewAccountsGetRequest(token.Reveal())
	var resp plaidgo.AccountsGetResponse
	if err := c.do(ctx, "/accounts/get", repeatable, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.AccountsGet(ctx).AccountsGetRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return linkd.ItemAccounts{}, err
	}
	item := resp.GetItem()
	out := linkd.ItemAccounts{
		ItemID:          item.GetItemId(),
		InstitutionID:   item.GetInstitutionId(),
		InstitutionName: item.GetInstitutionName(),
		Webhook:         item.GetWebhook(),
		RequestID:       resp.GetRequestId(),
	}
	for _, a := range resp.GetAccounts() {
		out.Accounts = append(out.Accounts, &linkdv1.Account{
			Id:                 a.GetAccountId(),
			Name:               a.GetName(),
			Mask:               a.GetMask(),
			Type:               string(a.GetType()),
			Subtype:            string(a.GetSubtype()),
			VerificationStatus: a.GetVerificationStatus(),
		})
	}
	if out.InstitutionID != "" && out.InstitutionName == "" {
		st, err := c.GetItem(ctx, token)
		if err != nil {
			return linkd.ItemAccounts{}, err
		}
		out.InstitutionName = st.InstitutionName
	}
	return out, nil
}

// GetItem calls /item/get: the Item's error, consent expiration, webhook
// and institution. It returns EINTERNAL for a zero token (without calling
// Plaid) and otherwise the converted Plaid or transport error: notably
// EPRECONDITION for an Item Plaid no longer has.
func (c *Client) GetItem(ctx context.Context, token linkd.AccessToken) (linkd.ItemState, error) {
	if token.IsZero() {
		return linkd.ItemState{}, linkd.Errorf(linkd.EINTERNAL, "GetItem called without an access token")
	}
	req := plaidgo.NewItemGetRequest(token.Reveal())
	var resp plaidgo.ItemGetResponse
	if err := c.do(ctx, "/item/get", repeatable, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.ItemGet(ctx).ItemGetRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return linkd.ItemState{}, err
	}
	item := resp.GetItem()
	st := linkd.ItemState{
		ItemID:          item.GetItemId(),
		InstitutionID:   item.GetInstitutionId(),
		InstitutionName: item.GetInstitutionName(),
		Webhook:         item.GetWebhook(),
		RequestID:       resp.GetRequestId(),
	}
	if pe, ok := item.GetErrorOk(); ok && pe != nil {
		st.ErrorType, st.ErrorCode = string(pe.GetErrorType()), pe.GetErrorCode()
	}
	if t, ok := item.GetConsentExpirationTimeOk(); ok && t != nil {
		st.ConsentExpiration = *t
	}
	return st, nil
}

// UpdateItemWebhook calls /item/webhook/update, pointing the Item's
// webhooks at url, and returns Plaid's request_id. It returns EINTERNAL
// for a zero token and EINVALID naming webhook for an empty url, both
// without calling Plaid, and otherwise the converted Plaid or transport
// error.
func (c *Client) UpdateItemWebhook(ctx context.Context, token linkd.AccessToken, url string) (string, error) {
	if token.IsZero() {
		return "", linkd.Errorf(linkd.EINTERNAL, "UpdateItemWebhook called without an access token")
	}
	if url == "" {
		return "", linkd.InvalidField("webhook", "webhook is required")
	}
	req := plaidgo.NewItemWebhookUpdateRequest(token.Reveal())
	req.SetWebhook(url)
	var resp plaidgo.ItemWebhookUpdateResponse
	if err := c.do(ctx, "/item/webhook/update", repeatable, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.ItemWebhookUpdate(ctx).ItemWebhookUpdateRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return "", err
	}
	return resp.GetRequestId(), nil
}

// RemoveItem calls /item/remove and returns Plaid's request_id. It returns
// EINTERNAL for a zero token (without calling Plaid) and otherwise the
// converted Plaid or transport error: EPRECONDITION with ITEM_NOT_FOUND
// when the Item is already removed.
func (c *Client) RemoveItem(ctx context.Context, token linkd.AccessToken) (string, error) {
	if token.IsZero() {
		return "", linkd.Errorf(linkd.EINTERNAL, "RemoveItem called without an access token")
	}
	req := plaidgo.NewItemRemoveRequest(token.Reveal())
	var resp plaidgo.ItemRemoveResponse
	if err := c.do(ctx, "/item/remove", repeatable, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.ItemRemove(ctx).ItemRemoveRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return "", err
	}
	return resp.GetRequestId(), nil
}

// CreateSandboxPublicToken calls /sandbox/public_token/create. It returns
// EPRECONDITION against production and EINVALID naming institution_id or
// initial_products when one is empty, both without calling Plaid; EINVALID
// naming institution_id when Plaid does not know the institution; and
// otherwise the converted Plaid or transport error.
func (c *Client) CreateSandboxPublicToken(ctx context.Context, institutionID string, initialProducts []string, webhook string, login linkd.SandboxLogin) (publicToken, requestID string, err error) {
	switch {
	case c.env != linkd.PlaidSandbox:
		return "", "", linkd.Errorf(linkd.EPRECONDITION, "sandbox public tokens exist only in Plaid's sandbox; this linkd uses Plaid %s", c.env)
	case institutionID == "":
		return "", "", linkd.InvalidField("institution_id", "is required")
	case len(initialProducts) == 0:
		return "", "", linkd.InvalidField("initial_products", "needs at least one product")
	}
	products := make([]plaidgo.Products, len(initialProducts))
	for i, p := range initialProducts {
		products[i] = plaidgo.Products(p)
	}
	req := plaidgo.NewSandboxPublicTokenCreateRequest(institutionID, products)
	if webhook != "" || login != (linkd.SandboxLogin{}) {
		opts := plaidgo.NewSandboxPublicTokenCreateRequestOptions()
		if webhook != "" {
			opts.SetWebhook(webhook)
		}
		if login.Username != "" {
			opts.SetOverrideUsername(login.Username)
		}
		if login.Password != "" {
			opts.SetOverridePassword(login.Password)
		}
		req.SetOptions(*opts)
	}
	var resp plaidgo.SandboxPublicTokenCreateResponse
	if err := c.do(ctx, "/sandbox/public_token/create", repeatable, nil, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.SandboxPublicTokenCreate(ctx).SandboxPublicTokenCreateRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return "", "", err
	}
	return resp.GetPublicToken(), resp.GetRequestId(), nil
}

// ResetSandboxItemLogin calls /sandbox/item/reset_login. It returns
// EPRECONDITION against production and EINTERNAL for a zero token, both
// without calling Plaid, and otherwise the converted Plaid or transport
// error.
func (c *Client) ResetSandboxItemLogin(ctx context.Context, token linkd.AccessToken) (string, error) {
	switch {
	case c.env != linkd.PlaidSandbox:
		return "", linkd.Errorf(linkd.EPRECONDITION, "sandbox Items exist only in Plaid's sandbox; this linkd uses Plaid %s", c.env)
	case token.IsZero():
		return "", linkd.Errorf(linkd.EINTERNAL, "ResetSandboxItemLogin called without an access token")
	}
	req := plaidgo.NewSandboxItemResetLoginRequest(token.Reveal())
	// Repeatable: resetting a reset login changes nothing.
	var resp plaidgo.SandboxItemResetLoginResponse
	if err := c.do(ctx, "/sandbox/item/reset_login", repeatable, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.SandboxItemResetLogin(ctx).SandboxItemResetLoginRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return "", err
	}
	return resp.GetRequestId(), nil
}

// FireSandboxWebhook calls /sandbox/item/fire_webhook, with webhook_type
// when webhookType is set. It returns EPRECONDITION against production and
// EINTERNAL for a zero token, both without calling Plaid, and otherwise the
// converted Plaid or transport error.
func (c *Client) FireSandboxWebhook(ctx context.Context, token linkd.AccessToken, webhookType, webhookCode string) (string, error) {
	switch {
	case c.env != linkd.PlaidSandbox:
		return "", linkd.Errorf(linkd.EPRECONDITION, "sandbox webhooks exist only in Plaid's sandbox; this linkd uses Plaid %s", c.env)
	case token.IsZero():
		return "", linkd.Errorf(linkd.EINTERNAL, "FireSandboxWebhook called without an access token")
	}
	req := plaidgo.NewSandboxItemFireWebhookRequest(token.Reveal(), webhookCode)
	if webhookType != "" {
		req.SetWebhookType(plaidgo.WebhookType(webhookType))
	}
	// Once: a repeat would send the webhook twice.
	var resp plaidgo.SandboxItemFireWebhookResponse
	if err := c.do(ctx, "/sandbox/item/fire_webhook", once, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.SandboxItemFireWebhook(ctx).SandboxItemFireWebhookRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return "", err
	}
	return resp.GetRequestId(), nil
}

// SetSandboxVerificationStatus calls /sandbox/item/set_verification_status.
// It returns EPRECONDITION against production and EINTERNAL for a zero
// token, both without calling Plaid, and otherwise the converted Plaid or
// transport error.
func (c *Client) SetSandboxVerificationStatus(ctx context.Context, token linkd.AccessToken, accountID, status string) (string, error) {
	switch {
	case c.env != linkd.PlaidSandbox:
		return "", linkd.Errorf(linkd.EPRECONDITION, "sandbox verification statuses exist only in Plaid's sandbox; this linkd uses Plaid %s", c.env)
	case token.IsZero():
		return "", linkd.Errorf(linkd.EINTERNAL, "SetSandboxVerificationStatus called without an access token")
	}
	req := plaidgo.NewSandboxItemSetVerificationStatusRequest(token.Reveal(), accountID, status)
	// Once: a repeat would be refused (the account is no longer pending),
	// though the first call may have sent the webhook.
	var resp plaidgo.SandboxItemSetVerificationStatusResponse
	if err := c.do(ctx, "/sandbox/item/set_verification_status", once, []string{token.Reveal()}, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.SandboxItemSetVerificationStatus(ctx).SandboxItemSetVerificationStatusRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return "", err
	}
	return resp.GetRequestId(), nil
}

// WebhookVerificationKey calls /webhook_verification_key/get and decodes
// the JWK. It returns EINVALID naming key_id when keyID is empty (without
// calling Plaid), EUNAVAILABLE when Plaid answers with a key that is not an
// EC P-256 point, and otherwise the converted Plaid or transport error.
func (c *Client) WebhookVerificationKey(ctx context.Context, keyID string) (linkd.WebhookKey, error) {
	if keyID == "" {
		return linkd.WebhookKey{}, linkd.InvalidField("key_id", "is required")
	}
	req := plaidgo.NewWebhookVerificationKeyGetRequest(keyID)
	var resp plaidgo.WebhookVerificationKeyGetResponse
	if err := c.do(ctx, "/webhook_verification_key/get", repeatable, nil, func(ctx context.Context) (*http.Response, error) {
		r, httpResp, err := c.api.WebhookVerificationKeyGet(ctx).WebhookVerificationKeyGetRequest(*req).Execute()
		resp = r
		return httpResp, err
	}); err != nil {
		return linkd.WebhookKey{}, err
	}
	jwk := resp.GetKey()
	x, errX := base64.RawURLEncoding.DecodeString(jwk.GetX())
	y, errY := base64.RawURLEncoding.DecodeString(jwk.GetY())
	if jwk.GetKty() != "EC" || jwk.GetCrv() != "P-256" || errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return linkd.WebhookKey{}, linkd.Errorf(linkd.EUNAVAILABLE, "Plaid's webhook key %s is not an EC P-256 key (request_id %s)", keyID, resp.GetRequestId())
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return linkd.WebhookKey{}, linkd.Errorf(linkd.EUNAVAILABLE, "Plaid's webhook key %s is not a point on P-256 (request_id %s)", keyID, resp.GetRequestId())
	}
	key := linkd.WebhookKey{KeyID: jwk.GetKid(), Alg: jwk.GetAlg(), Key: pub}
	if exp, ok := jwk.GetExpiredAtOk(); ok && exp != nil && *exp != 0 {
		key.ExpiredAt = time.Unix(int64(*exp), 0)
	}
	return key, nil
}
