// Package plaidemu emulates the part of Plaid's HTTP API linkd uses, on a
// real listener, with Plaid's JSON bodies, token formats, error bodies and
// HTTP statuses, so that linkd's Plaid client and server can be tested end
// to end without Plaid. It keeps everything in memory, the Items also in a
// state file when Options.StatePath is set, and is safe for concurrent
// use.
//
// The state file's promise: a change to an Item is written to the file
// before the request that made it is answered, so an answered change
// survives the process being killed (the kernel keeps what was written);
// the file is synced to disk in the background, at most stateSyncInterval
// (200 ms) after a change, and at Close, so a power loss or kernel crash
// may lose the last moments' changes. The emulator stands in for Plaid in
// development and tests; an fsync before every answer cost more than the
// rest of its work.
package plaidemu

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Lifetimes Plaid gives its tokens.
const (
	LinkTokenLifetime       = 4 * time.Hour
	UpdateLinkTokenLifetime = 30 * time.Minute
	PublicTokenLifetime     = 30 * time.Minute
)

// maxBodyBytes bounds a request body.
const maxBodyBytes = 1 << 20

// Options configure an Emulator.
type Options struct {
	// ClientID and Secret are the only credentials the emulator accepts.
	ClientID string
	Secret   string
	// Now is the emulator's clock; nil means time.Now. Tests move it to
	// expire tokens.
	Now func() time.Time
	// Logger receives one line per request (path, status, error code,
	// request_id; never a body or token): at Debug for a success, Info
	// for a Plaid error, Warn for a 5xx. nil discards.
	Logger *slog.Logger
	// StatePath, when set, is the file that keeps the emulator's Items
	// (with their access tokens) and its webhook signing key across
	// restarts: Start and Open load it, or create it when missing (mode
	// 0600), and every change to an Item is appended to it before the
	// request that made it is answered, and synced to disk in the
	// background within 200 ms (see the package doc). Link tokens, public
	// tokens and Link sessions stay in memory. "" keeps everything in
	// memory; New ignores it (use Open).
	StatePath string
}

// Emulator is an in-memory Plaid sandbox. Create it with Start, or with New
// or Open to mount it on a server of your own.
type Emulator struct {
	clientID, secret string
	now              func() time.Time
	log              *slog.Logger

	srv *http.Server
	url string

	// webhookKey signs webhooks; webhookClient delivers them.
	webhookKey    *webhookKey
	webhookClient *http.Client

	// statePath is Options.StatePath for an Emulator from Open; "" keeps
	// nothing on disk. state is its open file (nil without one).
	statePath string
	state     *stateLog

	mu           sync.Mutex
	linkTokens   map[string]*linkToken
	publicTokens map[string]*publicToken
	items        map[string]*item // by access token
	calls        map[string]int
	failures     map[string][]Error
	faults       atomic.Pointer[Faults] // nil: none (SetFaults)
	hangs        map[string]int
	outbox       []webhook
	// linkPageURL is the page hosted_link_url points at (SetLinkPageURL).
	linkPageURL string
	// linkWebhooksForWebview: webview sessions send LINK webhooks too.
	linkWebhooksForWebview bool
	// lose is how many of the next webhooks get lost (LoseWebhooks).
	lose int
}

type linkToken struct {
	clientUserID string
	clientName   string
	products     []string
	webhook      string
	redirectURI  string
	accessToken  string // update mode: the Item's access token
	// accountSelection is update.account_selection_enabled: the session
	// picks the Item's accounts anew, new ones included.
	accountSelection bool
	expires          time.Time
	created          time.Time
	countryCodes     []string
	language         string
	// hosted is set for a Hosted Link token; completionRedirectURI is
	// where its page goes when a session ends.
	hosted                bool
	completionRedirectURI string
	// sessions are its finished Link sessions, oldest first.
	sessions []*linkSession
}

type publicToken struct {
	institutionID string
	accountIDs    []string
	products      []string
	webhook       string
	accessToken   string // update mode: the Item it was issued for
	expires       time.Time
	spent         bool
	// verification is the verification_status of accounts pending
	// automated micro-deposit verification.
	verification map[string]string
}

type item struct {
	// accessToken is the Item's key in Emulator.items and its state record.
	accessToken   string
	id            string
	institutionID string
	accountIDs    []string
	products      []string
	webhook       string
	created       time.Time
	removed       bool
	// loginRequired is set by /sandbox/item/reset_login and cleared by a
	// finished update-mode Link session; meanwhile data endpoints fail
	// with ITEM_LOGIN_REQUIRED.
	loginRequired bool
	// consentExpires is consent_expiration_time; zero for consent that
	// does not expire (Plaid's null).
	consentExpires time.Time
	// addedAccounts is how many accounts the bank opened for the login
	// since the Item was linked (NEW_ACCOUNTS_AVAILABLE): see
	// addedAccounts().
	addedAccounts int
	// verification is the verification_status by account_id of accounts
	// in the automated micro-deposit flow; others have none.
	verification map[string]string
}

// New returns an Emulator that is an http.Handler and listens nowhere. With
// an empty Options.ClientID or Secret it rejects every request with
// INVALID_API_KEYS. It cannot fail.
func New(opts Options) *Emulator {
	e := &Emulator{
		clientID:     opts.ClientID,
		secret:       opts.Secret,
		now:          opts.Now,
		log:          opts.Logger,
		linkTokens:   map[string]*linkToken{},
		publicTokens: map[string]*publicToken{},
		items:        map[string]*item{},
		calls:        map[string]int{},
		failures:     map[string][]Error{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.webhookKey = newWebhookKey(e.now())
	// Its own transport, so Close can drop its idle connections.
	e.webhookClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	return e
}

// Open returns an Emulator like New, with the state at Options.StatePath
// (none when empty): loaded when the file exists, else created. It returns
// an error when the state file cannot be read, is damaged or cannot be
// written.
func Open(opts Options) (*Emulator, error) {
	e := New(opts)
	e.statePath = opts.StatePath
	if e.statePath == "" {
		return e, nil
	}
	if err := e.loadState(); err != nil {
		return nil, err
	}
	e.state = e.openStateLog()
	// Written at once, so that the webhook key is kept even before the
	// first Item, and an unwritable path fails here.
	if err := e.saveState(); err != nil {
		e.closeState()
		return nil, err
	}
	return e, nil
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves the
// emulator there until Close, with the state at Options.StatePath when set.
// It returns an error when ClientID or Secret is empty, when the state file
// cannot be read, is damaged or cannot be written, or when it cannot listen.
func Start(addr string, opts Options) (*Emulator, error) {
	if opts.ClientID == "" || opts.Secret == "" {
		return nil, errors.New("plaidemu: Options.ClientID and Options.Secret are required")
	}
	e, err := Open(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("plaidemu: %w", err)
	}
	e.url = "http://" + ln.Addr().String()
	e.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
	go e.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed after Close
	return e, nil
}

// URL returns the emulator's base URL ("http://127.0.0.1:port"), to use as
// the Plaid client's base URL; "" for an Emulator from New.
func (e *Emulator) URL() string { return e.url }

// Close stops the listener and closes open connections, its own and the
// idle ones it made to deliver webhooks. It returns the server's close
// error; for an Emulator from New it only drops those idle connections and
// returns nil.
func (e *Emulator) Close() error {
	e.webhookClient.CloseIdleConnections()
	defer func() {
		e.mu.Lock()
		e.closeState()
		e.mu.Unlock()
	}()
	if e.srv == nil {
		return nil
	}
	return e.srv.Close()
}

// Calls returns how many requests to path ("/item/public_token/exchange")
// succeeded; 0 for a path never called or unknown.
func (e *Emulator) Calls(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[path]
}

// FailNext makes the next request to path that passes the credentials check
// fail with perr instead of being served (a status of 0 means Plaid's status
// for perr.Type). Calls queue up, one failure per request. It cannot fail.
func (e *Emulator) FailNext(path string, perr Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures[path] = append(e.failures[path], perr)
}

// endpoint serves one Plaid path. It runs with e.mu held and returns the
// response body (request_id is added to it) or a Plaid error.
type endpoint func(e *Emulator, f *fields) (answer, *Error)

func (e *Emulator) endpoint(path string) endpoint {
	switch path {
	case "/link/token/create":
		return (*Emulator).linkTokenCreate
	case "/item/public_token/exchange":
		return (*Emulator).publicTokenExchange
	case "/sandbox/public_token/create":
		return (*Emulator).sandboxPublicTokenCreate
	case "/item/get":
		return (*Emulator).itemGet
	case "/item/remove":
		return (*Emulator).itemRemove
	case "/accounts/get":
		return (*Emulator).accountsGet
	case "/sandbox/item/reset_login":
		return (*Emulator).sandboxItemResetLogin
	case "/sandbox/item/fire_webhook":
		return (*Emulator).sandboxItemFireWebhook
	case "/link/token/get":
		return (*Emulator).linkTokenGet
	case "/webhook_verification_key/get":
		return (*Emulator).webhookVerificationKeyGet
	case "/item/webhook/update":
		return (*Emulator).itemWebhookUpdate
	case "/sandbox/item/set_verification_status":
		return (*Emulator).sandboxItemSetVerificationStatus
	case EmulatorSetItemStatePath:
		return (*Emulator).emulatorItemSetState
	}
	return nil
}

// ServeHTTP implements http.Handler: it serves Plaid's API at the paths
// Plaid uses, answering failures with Plaid's error bodies. Webhooks a
// request causes are delivered before it is answered.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	requestID := newRequestID()
	buf := getBuffer()
	defer putBuffer(buf)
	var body answer
	var hooks []webhook
	perr := e.injectFault(r)
	if perr == nil {
		body, hooks, perr = e.serve(r, buf)
	}
	e.deliver(hooks) // before answering, so the caller sees their effect
	if perr == nil && e.takeHang(r.URL.Path) {
		<-r.Context().Done()
		e.log.Info("plaidemu: request served, answer withheld", "path", r.URL.Path, "plaid_request_id", requestID)
		return
	}
	status := http.StatusOK
	var out any = body
	if perr != nil {
		status = perr.HTTPStatus()
		out = perr.body(requestID)
	} else {
		body.setRequestID(requestID)
	}
	// Encoded whole first, so that the answer goes out in one write with
	// its Content-Length.
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(out); err != nil {
		e.log.Warn("plaidemu: encoding response", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		e.log.Warn("plaidemu: writing response", "path", r.URL.Path, "err", err)
	}
	e.logRequest(r, start, status, requestID, perr)
}

// logRequest logs one line for a request answered with status: at Debug
// when it succeeded (linkd's access log and Plaid request metrics cover
// those calls already, and a line per call was ~5% of the emulator's
// CPU), at Info for a Plaid error, at Warn for a 5xx.
func (e *Emulator) logRequest(r *http.Request, start time.Time, status int, requestID string, perr *Error) {
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case perr != nil || status >= 300:
		level = slog.LevelInfo
	}
	if !e.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{slog.String("path", r.URL.Path), slog.Int("status", status), slog.String("plaid_request_id", requestID), slog.Duration("duration", time.Since(start))}
	if perr != nil {
		attrs = append(attrs, slog.String("error_type", perr.Type), slog.String("error_code", perr.Code))
	}
	e.log.LogAttrs(r.Context(), level, "plaidemu: request", attrs...)
}

// serve answers r and returns the webhooks it queued, for ServeHTTP to
// deliver before the answer. It reads the body into buf.
func (e *Emulator) serve(r *http.Request, buf *bytes.Buffer) (answer, []webhook, *Error) {
	handle := e.endpoint(r.URL.Path)
	if handle == nil || r.Method != http.MethodPost {
		return nil, nil, errNotFound()
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil, errInvalidHeaders()
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil || n > maxBodyBytes {
		return nil, nil, errInvalidBody()
	}
	// The values are copies (json.RawMessage keeps its own), so buf can
	// take the answer once this returns.
	var body map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &body); err != nil || body == nil {
		return nil, nil, errInvalidBody()
	}
	f := &fields{body: body}
	if !e.authorized(r, f) {
		return nil, nil, errInvalidAPIKeys()
	}
	return e.handle(r.URL.Path, handle, f)
}

// call runs handle on body, as a request to its endpoint would be but
// without credentials, for the Emulator's Go methods; it delivers the
// webhooks handle queued before it returns.
func (e *Emulator) call(handle func(*fields) (answer, *Error), body map[string]any) (answer, *Error) {
	f := &fields{body: map[string]json.RawMessage{}}
	for k, v := range body {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, errInvalidBody()
		}
		f.body[k] = raw
	}
	e.mu.Lock()
	out, perr := handle(f)
	hooks := e.takeOutbox()
	e.mu.Unlock()
	e.deliver(hooks)
	return out, perr
}

// handle runs an endpoint with e.mu held, unless a failure is queued for
// path, and returns its answer and the webhooks it queued. The webhooks
// are taken in the same hold of e.mu as the endpoint ran, so that each
// request delivers its own: taken later, a concurrent request could
// deliver them instead, and this one would answer before they had reached
// the receiver.
func (e *Emulator) handle(path string, handle endpoint, f *fields) (answer, []webhook, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.failures[path]; len(q) > 0 {
		perr := q[0]
		e.failures[path] = q[1:]
		return nil, nil, &perr
	}
	out, perr := handle(e, f)
	hooks := e.takeOutbox()
	if perr != nil {
		return nil, hooks, perr
	}
	e.calls[path]++
	return out, hooks, nil
}

// authorized checks client_id and secret, from the body or else from
// Plaid's headers (plaid-go sends headers).
func (e *Emulator) authorized(r *http.Request, f *fields) bool {
	id, secret := f.str("client_id", false), f.str("secret", false)
	if f.invalid != nil {
		return false
	}
	if id == "" {
		id = r.Header.Get("PLAID-CLIENT-ID")
	}
	if secret == "" {
		secret = r.Header.Get("PLAID-SECRET")
	}
	if e.clientID == "" || e.secret == "" {
		return false
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(e.clientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(e.secret))
	return idOK&secretOK == 1
}
