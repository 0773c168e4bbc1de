// Package linkpage serves linkd's own Link webview page for emulator mode:
// GET /link/v2/stable/link.html?isWebview=true&token=...&receivedRedirectUri=...
// behaves like Plaid's hosted page. It walks a user through consent,
// institution select, credentials, MFA, OAuth and account select, and
// reports every step the way Plaid's webview Link does: by navigating the
// window to plaidlink://event|connected|exit URLs, which the app's webview
// intercepts.
//
// The page is server-rendered HTML with a little vanilla JavaScript (no
// build step, embedded with go:embed). It talks to the Plaid emulator only
// through the Backend interface; the rules of the sandbox (which username
// and password work, which institution asks for a code) are in sandbox.go.
package linkpage

import (
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Path is where the page is served; Prefix is the tree of everything it
// serves (assets, its JSON calls, the emulated bank's OAuth page and the
// page a Hosted Link popup returns to).
const (
	Prefix = "/link/v2/stable/"
	Path   = Prefix + "link.html"
)

// sessionLifetime bounds how long a Link session is remembered; Plaid's
// link tokens live at most 4 hours.
const sessionLifetime = 4 * time.Hour

// Session bounds: the page is served without credentials, so reloading it
// must not grow memory without end. A link token keeps its newest
// maxSessionsPerToken sessions, and the page at most maxSessions in all
// (the oldest go first).
const (
	maxSessionsPerToken = 8
	maxSessions         = 10000
)

//go:embed assets
var assets embed.FS

var pageTemplate = template.Must(template.ParseFS(assets, "assets/link.html.tmpl", "assets/oauth.html.tmpl", "assets/oauth-return.html.tmpl"))

// Backend is what the page needs of a Plaid sandbox: the emulator, through
// an adapter in cmd/linkd.
type Backend interface {
	// LinkToken returns what is known of a link token, or an *Error
	// (INVALID_LINK_TOKEN for an unknown or expired one).
	LinkToken(linkToken string) (Token, error)
	// Institutions returns the institutions Link offers.
	Institutions() []Institution
	// CreatePublicToken issues the public token of a finished session, for
	// the given institution and accounts, or returns an *Error.
	CreatePublicToken(linkToken, institutionID string, accountIDs []string) (string, error)
}

// Token is a link token as the page sees it.
type Token struct {
	// ClientName is the token's client_name; Link shows it as
	// displayName does.
	ClientName string
	// RedirectURI is where OAuth institutions send the user back; "" means
	// OAuth institutions cannot be linked with this token.
	RedirectURI string
	// UpdateMode tokens relink the Item at InstitutionID, skipping
	// institution select. As in Plaid's update mode (without
	// account_selection_enabled) there is no account select either: Link
	// reports the Item's accounts, AccountIDs.
	UpdateMode    bool
	InstitutionID string
	AccountIDs    []string
	// AccountSelection is Plaid's update.account_selection_enabled: update
	// mode shows account select with the Item's AccountIDs preselected,
	// offering Accounts.
	AccountSelection bool
	// Accounts are the accounts an update-mode session offers (the
	// institution's and any the bank added since the Item was linked);
	// nil offers the institution's.
	Accounts []Account
	// Hosted is true for a Hosted Link token: the page runs in a browser
	// tab with no webview delegate, reports the session to the backend
	// (HostedBackend) and then goes to CompletionRedirectURI.
	Hosted                bool
	CompletionRedirectURI string
}

// HostedBackend is a Backend that takes every session when it ends, of
// Hosted Link and webview tokens alike, as Plaid's Link reports each to
// Plaid (/link/token/get lists it; LINK webhooks follow). A webview
// session reports before its final redirect, so that its connected
// redirect reaches the app after Plaid knows the session. Without one,
// sessions report nothing.
type HostedBackend interface {
	Backend
	// FinishSession records a finished session: linked with publicToken
	// at institutionID with accountIDs, or exited with exitStatus.
	FinishSession(linkToken, linkSessionID, publicToken, institutionID string, accountIDs []string, exitStatus string, events []HostedEvent) error
}

// HostedEvent is one event the page fired in a session (its report).
type HostedEvent struct {
	Name      string            `json:"event_name"`
	Timestamp string            `json:"timestamp"`
	Metadata  map[string]string `json:"metadata"`
}

// Institution is an institution Link offers.
type Institution struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// OAuth institutions log the user in on their own site.
	OAuth bool `json:"oauth"`
	// OAuthPopup institutions are OAuth institutions whose site Link opens
	// in a new window (window.open), as Plaid's Link does for Chase,
	// rather than in its own. In a webview the app must handle the popup
	// (open it in a secure browser); the bank then returns to the
	// token's redirect_uri as for any OAuth institution. In Hosted Link
	// (a browser tab) the popup returns to the page's own return page and
	// Link carries on in the tab by itself.
	OAuthPopup bool      `json:"oauth_popup"`
	Accounts   []Account `json:"accounts"`
}

// Account is an account the user can pick.
type Account struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Mask    string `json:"mask"`
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
}

// Error is a Plaid error as Link reports it in event and exit redirects.
type Error struct {
	Type           string `json:"error_type"`
	Code           string `json:"error_code"`
	Message        string `json:"error_message"`
	DisplayMessage string `json:"display_message"`
}

// Error implements error.
func (e *Error) Error() string { return e.Type + "/" + e.Code + ": " + e.Message }

// Options configure a Page.
type Options struct {
	Backend Backend
	// Logger receives one line per failed call (never a token); nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Page is the Link page and its JSON calls. It is an http.Handler for the
// tree under Prefix and is safe for concurrent use.
type Page struct {
	backend Backend
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session // by link_session_id
	oauth    map[string]*oauthState
}

// session is one Link session: what the user has proven so far.
type session struct {
	linkToken     string
	institutionID string
	// authenticated is true once credentials (and MFA, if asked) or OAuth
	// succeeded for institutionID.
	authenticated bool
	mfaPending    bool
	// connected is set once the session's public token is issued.
	connected bool
	// publicToken and accountIDs are what connect issued, for the
	// session's report; finished is set once it is reported.
	publicToken string
	accountIDs  []string
	finished    bool
	started     time.Time
}

// oauthState is an OAuth redirect in flight, by oauth_state_id.
type oauthState struct {
	sessionID string
	// institutionID is the bank the state was started for; resuming
	// authenticates the session for that bank only.
	institutionID string
	// returnToLink is set for a Hosted Link popup: the bank returns to
	// the page's own return page, not to redirect_uri, and the session
	// carries on in the tab that opened the popup (oauthStatus).
	returnToLink bool
	authorized   bool
	resumed      bool
}

// New returns a Page. It panics when opts.Backend is nil.
func New(opts Options) *Page {
	if opts.Backend == nil {
		panic("linkpage: Options.Backend is required")
	}
	p := &Page{
		backend:  opts.Backend,
		log:      opts.Logger,
		now:      opts.Now,
		sessions: map[string]*session{},
		oauth:    map[string]*oauthState{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	static, _ := fs.Sub(assets, "assets")
	p.mux = http.NewServeMux()
	p.mux.HandleFunc("GET "+Path, p.serveLink)
	p.mux.Handle("GET "+Prefix+"assets/", http.StripPrefix(Prefix+"assets/", noDirs(http.FileServerFS(static))))
	p.mux.HandleFunc("POST "+Prefix+"api/credentials", p.api(p.submitCredentials))
	p.mux.HandleFunc("POST "+Prefix+"api/mfa", p.api(p.submitMFA))
	p.mux.HandleFunc("POST "+Prefix+"api/oauth", p.api(p.startOAuth))
	p.mux.HandleFunc("POST "+Prefix+"api/oauth_status", p.api(p.oauthStatus))
	p.mux.HandleFunc("POST "+Prefix+"api/connect", p.api(p.connect))
	p.mux.HandleFunc("POST "+Prefix+"api/finish", p.api(p.finish))
	p.mux.HandleFunc("GET "+Prefix+"oauth/authorize", p.serveBank)
	p.mux.HandleFunc("POST "+Prefix+"oauth/authorize", p.authorizeBank)
	p.mux.HandleFunc("GET "+Prefix+"oauth/return", p.serveReturn)
	return p
}

// ServeHTTP implements http.Handler for the tree under Prefix.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL holds the link token
	p.mux.ServeHTTP(w, r)
}

// noDirs hides directory listings of the assets.
func noDirs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// pageConfig is what link.js starts from; it is embedded in the page as
// JSON.
type pageConfig struct {
	LinkToken     string        `json:"link_token"`
	LinkSessionID string        `json:"link_session_id"`
	RequestID     string        `json:"request_id"`
	UpdateMode    bool          `json:"update_mode"`
	Institutions  []Institution `json:"institutions"`
	// Institution is preselected: update mode, or an OAuth resume. In
	// update mode its accounts are the Item's alone.
	Institution *Institution `json:"institution,omitempty"`
	// AccountSelection (update mode only) shows account select with
	// SelectedAccountIDs, the Item's accounts, preselected.
	AccountSelection   bool     `json:"account_selection,omitempty"`
	SelectedAccountIDs []string `json:"selected_account_ids,omitempty"`
	// Resumed is true when Link was relaunched after OAuth.
	Resumed bool `json:"resumed"`
	// Error makes Link exit at once (an invalid link token, a bad OAuth
	// relaunch).
	Error *Error `json:"error,omitempty"`
	// Status is the exit status to report with Error.
	Status string `json:"status,omitempty"`
	// Hosted is true for a Hosted Link token: no plaidlink:// redirects;
	// the page reports the session (api/finish) and then goes to
	// CompletionRedirectURI, if any.
	Hosted                bool   `json:"hosted,omitempty"`
	CompletionRedirectURI string `json:"completion_redirect_uri,omitempty"`
}

// linkView is the template's data.
type linkView struct {
	ClientName string
	Config     template.JS
}

// maxClientName is the longest client_name Link shows, in characters.
// Plaid takes longer names at /link/token/create but shows them as
// "This Application"; so does this page.
const maxClientName = 30

// displayName is the app name Link shows for a token's client_name: the
// name itself, or "This Application" when it is empty (an invalid token)
// or longer than maxClientName characters.
func displayName(clientName string) string {
	if clientName == "" || utf8.RuneCountInString(clientName) > maxClientName {
		return "This Application"
	}
	return clientName
}

// Initial is the first letter of the client name, for the app's badge: a
// rune, not a byte, so "Épargne" shows É.
func (v linkView) Initial() string {
	for _, r := range v.ClientName {
		return string(r)
	}
	return ""
}

// serveLink renders the page for a link token. An invalid token still gets
// the page, which exits at once with INVALID_LINK_TOKEN, as Plaid's does.
func (p *Page) serveLink(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cfg := pageConfig{
		LinkToken:     q.Get("token"),
		LinkSessionID: uuid.NewString(),
		RequestID:     newRequestID(),
		Institutions:  p.backend.Institutions(),
	}
	tok, err := p.backend.LinkToken(cfg.LinkToken)
	switch {
	case err != nil:
		cfg.Error = asPlaidError(err)
	case q.Get("receivedRedirectUri") != "":
		p.resume(&cfg, q.Get("receivedRedirectUri"))
		if cfg.Resumed && tok.UpdateMode {
			p.updateMode(&cfg, tok)
		}
	default:
		cfg.Hosted, cfg.CompletionRedirectURI = tok.Hosted, tok.CompletionRedirectURI
		if tok.UpdateMode {
			p.updateMode(&cfg, tok)
		}
		p.startSession(cfg.LinkSessionID, cfg.LinkToken)
	}
	view := linkView{ClientName: displayName(tok.ClientName)}
	raw, err := json.Marshal(cfg)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	view.Config = template.JS(raw) // html/template escapes it for the <script> context
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self' http: https:; frame-ancestors 'none'")
	if err := pageTemplate.ExecuteTemplate(w, "link.html.tmpl", view); err != nil {
		p.log.Warn("linkpage: rendering", "err", err)
	}
}

// resume continues the session of an OAuth redirect: Link relaunched with
// receivedRedirectUri carrying oauth_state_id.
func (p *Page) resume(cfg *pageConfig, received string) {
	cfg.Status = "requires_oauth"
	u, err := url.Parse(received)
	stateID := ""
	if err == nil {
		stateID = u.Query().Get("oauth_state_id")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, s := p.oauthSessionLocked(stateID)
	switch {
	case s != nil && s.linkToken == cfg.LinkToken && st.resumed:
		cfg.Error = &Error{Type: "OAUTH_ERROR", Code: "OAUTH_STATE_ID_ALREADY_PROCESSED",
			Message:        "this oauth_state_id was already used to resume Link",
			DisplayMessage: "We could not finish connecting with your bank. Please try again."}
	case s == nil || s.linkToken != cfg.LinkToken:
		cfg.Error = &Error{Type: "OAUTH_ERROR", Code: "OAUTH_STATE_ID_NOT_FOUND",
			Message:        "receivedRedirectUri has no oauth_state_id this link token started",
			DisplayMessage: "We could not finish connecting with your bank. Please try again."}
	case st.institutionID != s.institutionID:
		cfg.Error = &Error{Type: "OAUTH_ERROR", Code: "OAUTH_STATE_ID_NOT_FOUND",
			Message:        "receivedRedirectUri's oauth_state_id was started for another institution",
			DisplayMessage: "We could not finish connecting with your bank. Please try again."}
	case !st.authorized:
		cfg.Error = &Error{Type: "OAUTH_ERROR", Code: "OAUTH_ERROR",
			Message: "the institution did not authorize access", DisplayMessage: "Your bank did not grant access."}
	default:
		st.resumed = true
		s.authenticated = true
		cfg.LinkSessionID = st.sessionID
		cfg.Resumed = true
		cfg.Status = ""
		for _, ins := range cfg.Institutions {
			if ins.ID == s.institutionID {
				cfg.Institution = &ins
			}
		}
	}
}

// startSession remembers a new session, forgetting those past their life.
func (p *Page) startSession(id, linkToken string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for k, s := range p.sessions {
		if now.Sub(s.started) > sessionLifetime {
			delete(p.sessions, k)
		}
	}
	for k, st := range p.oauth {
		if _, ok := p.sessions[st.sessionID]; !ok {
			delete(p.oauth, k)
		}
	}
	p.evictOldest(func(s *session) bool { return s.linkToken == linkToken }, maxSessionsPerToken-1)
	p.evictOldest(func(*session) bool { return true }, maxSessions-1)
	p.sessions[id] = &session{linkToken: linkToken, started: now}
}

// evictOldest forgets the oldest sessions that match until
// at most limit of them remain. It runs with p.mu held.
func (p *Page) evictOldest(match func(*session) bool, limit int) {
	for {
		n, oldestID := 0, ""
		var oldest time.Time
		for id, s := range p.sessions {
			if !match(s) {
				continue
			}
			n++
			if oldestID == "" || s.started.Before(oldest) {
				oldestID, oldest = id, s.started
			}
		}
		if n <= limit {
			return
		}
		delete(p.sessions, oldestID)
	}
}

func (p *Page) institution(id string) *Institution {
	for _, ins := range p.backend.Institutions() {
		if ins.ID == id {
			return &ins
		}
	}
	return nil
}

// updateMode sets cfg up for an update-mode token: its Item's institution
// preselected with the Item's accounts alone (all of them when the token
// names none), or with account selection every account the token offers,
// the Item's preselected.
func (p *Page) updateMode(cfg *pageConfig, tok Token) {
	cfg.UpdateMode = true
	ins := p.institution(tok.InstitutionID)
	cfg.Institution = ins
	if ins == nil {
		return
	}
	if tok.Accounts != nil {
		ins.Accounts = slices.Clone(tok.Accounts)
	}
	if tok.AccountSelection {
		cfg.AccountSelection, cfg.SelectedAccountIDs = true, slices.Clone(tok.AccountIDs)
		return
	}
	if len(tok.AccountIDs) > 0 {
		ins.Accounts = slices.DeleteFunc(slices.Clone(ins.Accounts), func(a Account) bool { return !slices.Contains(tok.AccountIDs, a.ID) })
	}
}

// apiRequest is the body of every JSON call the page makes.
type apiRequest struct {
	LinkToken     string   `json:"link_token"`
	LinkSessionID string   `json:"link_session_id"`
	InstitutionID string   `json:"institution_id"`
	Username      string   `json:"username"`
	Password      string   `json:"password"`
	Code          string   `json:"code"`
	AccountIDs    []string `json:"account_ids"`
	// ExitStatus and Events are a session's report (finish).
	ExitStatus string        `json:"exit_status"`
	Events     []HostedEvent `json:"events"`
}

// apiResponse is the answer to every JSON call: request_id always, and
// either error (with fatal: Link can only exit) or the step's result.
type apiResponse struct {
	RequestID   string `json:"request_id"`
	Error       *Error `json:"error,omitempty"`
	Fatal       bool   `json:"fatal,omitempty"`
	Next        string `json:"next,omitempty"`
	URL         string `json:"url,omitempty"`
	PublicToken string `json:"public_token,omitempty"`
}

// apiError is an error a step returns: the Plaid error and whether the
// user may retry.
type apiError struct {
	err   *Error
	fatal bool
}

func (e *apiError) Error() string { return e.err.Error() }

// step serves one JSON call for a valid link token and known session.
type step func(r *http.Request, req *apiRequest, s *session) (apiResponse, error)

// api decodes a JSON call, checks its link token and session, runs fn and
// encodes the answer.
func (p *Page) api(fn step) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req apiRequest
		resp := apiResponse{}
		err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req)
		if err != nil {
			err = &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_BODY", Message: "body is not valid JSON"}, fatal: true}
		} else if _, terr := p.backend.LinkToken(req.LinkToken); terr != nil {
			err = &apiError{err: asPlaidError(terr), fatal: true}
		} else {
			p.mu.Lock()
			s := p.sessions[req.LinkSessionID]
			p.mu.Unlock()
			if s == nil || s.linkToken != req.LinkToken {
				err = &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "link_session_id is not a session of this link token"}, fatal: true}
			} else {
				resp, err = fn(r, &req, s)
			}
		}
		resp.RequestID = newRequestID()
		status := http.StatusOK
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = &apiError{err: asPlaidError(err), fatal: true}
			}
			resp.Error, resp.Fatal = ae.err, ae.fatal
			status = http.StatusBadRequest
			p.log.Info("linkpage: step failed", "path", r.URL.Path, "error_type", ae.err.Type, "error_code", ae.err.Code, "plaid_request_id", resp.RequestID)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(resp) //nolint:errcheck // the client went away
	}
}

// asPlaidError returns err as a Plaid error; anything else is an API_ERROR.
func asPlaidError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Type: "API_ERROR", Code: "INTERNAL_SERVER_ERROR", Message: "an unexpected error occurred",
		DisplayMessage: "Something went wrong. Please try again later."}
}

// submitCredentials checks the sandbox credentials for the chosen
// institution; next is "mfa" or "select_account".
func (p *Page) submitCredentials(_ *http.Request, req *apiRequest, s *session) (apiResponse, error) {
	ins := p.institution(req.InstitutionID)
	if ins == nil || ins.OAuth {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_INPUT", Code: "INVALID_INSTITUTION", Message: "institution_id is not a credentials institution"}, fatal: true}
	}
	if err := checkCredentials(req.Username, req.Password); err != nil {
		return apiResponse{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.institutionID = ins.ID
	s.mfaPending = asksForCode(ins.ID)
	s.authenticated = !s.mfaPending
	if s.mfaPending {
		return apiResponse{Next: "mfa"}, nil
	}
	return apiResponse{Next: "select_account"}, nil
}

// submitMFA checks the one-time code.
func (p *Page) submitMFA(_ *http.Request, req *apiRequest, s *session) (apiResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !s.mfaPending {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "no code was asked for"}, fatal: true}
	}
	if err := checkCode(req.Code); err != nil {
		return apiResponse{}, err
	}
	s.mfaPending, s.authenticated = false, true
	return apiResponse{Next: "select_account"}, nil
}

// startOAuth begins an OAuth login at an OAuth institution: url is the
// bank's page, which sends the user to the token's redirect_uri.
func (p *Page) startOAuth(_ *http.Request, req *apiRequest, s *session) (apiResponse, error) {
	ins := p.institution(req.InstitutionID)
	if ins == nil || !ins.OAuth {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_INPUT", Code: "INVALID_INSTITUTION", Message: "institution_id is not an OAuth institution"}, fatal: true}
	}
	tok, err := p.backend.LinkToken(req.LinkToken)
	if err != nil {
		return apiResponse{}, err
	}
	// A Hosted Link tab handles the return of a popup itself, as
	// Plaid's hosted page does; everything else returns to the app.
	returnToLink := tok.Hosted && ins.OAuthPopup
	if tok.RedirectURI == "" && !returnToLink {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD",
			Message:        "OAuth institutions need a link token created with redirect_uri",
			DisplayMessage: "This bank cannot be connected from this app yet."}, fatal: true}
	}
	stateID := uuid.NewString()
	p.mu.Lock()
	defer p.mu.Unlock()
	s.institutionID, s.authenticated = ins.ID, false
	// One OAuth state per session: a new start replaces the old, so the
	// page (served without credentials) cannot be made to grow the map.
	for id, st := range p.oauth {
		if st.sessionID == req.LinkSessionID {
			delete(p.oauth, id)
		}
	}
	p.oauth[stateID] = &oauthState{sessionID: req.LinkSessionID, institutionID: ins.ID, returnToLink: returnToLink}
	return apiResponse{URL: Prefix + "oauth/authorize?oauth_state_id=" + url.QueryEscape(stateID)}, nil
}

// oauthStatus tells a Hosted Link tab whether the bank in its popup has
// authorized the session yet: next is "select_account" once it has (the
// session is then logged in, once), "" while it has not.
func (p *Page) oauthStatus(_ *http.Request, req *apiRequest, s *session) (apiResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st *oauthState
	for _, o := range p.oauth {
		if o.sessionID == req.LinkSessionID && o.returnToLink {
			st = o
		}
	}
	switch {
	case st == nil || st.institutionID != s.institutionID:
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "the session has no OAuth popup in flight"}, fatal: true}
	case !st.authorized:
		return apiResponse{}, nil
	case st.resumed:
		return apiResponse{}, &apiError{err: &Error{Type: "OAUTH_ERROR", Code: "OAUTH_STATE_ID_ALREADY_PROCESSED",
			Message:        "this oauth_state_id was already used to resume Link",
			DisplayMessage: "We could not finish connecting with your bank. Please try again."}, fatal: true}
	}
	st.resumed, s.authenticated = true, true
	return apiResponse{Next: "select_account"}, nil
}

// connect issues the public token for the accounts the user picked.
func (p *Page) connect(_ *http.Request, req *apiRequest, s *session) (apiResponse, error) {
	p.mu.Lock()
	ok := s.authenticated && !s.connected && s.institutionID == req.InstitutionID
	s.connected = ok // claimed now, so two calls cannot both connect
	p.mu.Unlock()
	if !ok {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "the user has not logged in to this institution"}, fatal: true}
	}
	unclaim := func() {
		p.mu.Lock()
		s.connected = false
		p.mu.Unlock()
	}
	if len(req.AccountIDs) == 0 {
		unclaim()
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "MISSING_FIELDS", Message: "select at least one account",
			DisplayMessage: "Select at least one account."}}
	}
	token, err := p.backend.CreatePublicToken(req.LinkToken, req.InstitutionID, req.AccountIDs)
	if err != nil {
		unclaim()
		return apiResponse{}, err
	}
	p.mu.Lock()
	s.publicToken, s.accountIDs = token, slices.Clone(req.AccountIDs)
	p.mu.Unlock()
	return apiResponse{PublicToken: token}, nil
}

// maxHostedEvents bounds the events a session's report carries: a real
// session fires a few dozen.
const maxHostedEvents = 200

// finish reports a session (Hosted Link or webview) to the backend once,
// as Plaid's Link does when the session ends: linked with the public
// token connect issued, or exited with exit_status.
func (p *Page) finish(_ *http.Request, req *apiRequest, s *session) (apiResponse, error) {
	hb, ok := p.backend.(HostedBackend)
	if !ok {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "this Link page takes no session reports"}, fatal: true}
	}
	if len(req.Events) > maxHostedEvents {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "too many events"}, fatal: true}
	}
	p.mu.Lock()
	done := s.finished
	s.finished = true
	publicToken, institutionID, accountIDs := s.publicToken, s.institutionID, s.accountIDs
	p.mu.Unlock()
	if done {
		return apiResponse{}, &apiError{err: &Error{Type: "INVALID_REQUEST", Code: "INVALID_FIELD", Message: "the session was reported already"}, fatal: true}
	}
	exitStatus := req.ExitStatus
	if publicToken != "" {
		exitStatus = "" // connected: the session linked an Item
	} else if exitStatus == "" {
		exitStatus = "requires_credentials"
	}
	if institutionID == "" {
		institutionID = req.InstitutionID
	}
	if err := hb.FinishSession(req.LinkToken, req.LinkSessionID, publicToken, institutionID, accountIDs, exitStatus, req.Events); err != nil {
		return apiResponse{}, err
	}
	return apiResponse{}, nil
}

// bankView is the emulated bank's OAuth page.
type bankView struct {
	StateID     string
	Institution string
}

// serveBank is the OAuth institution's own login page, which Plaid would
// send the user to.
func (p *Page) serveBank(w http.ResponseWriter, r *http.Request) {
	stateID := r.URL.Query().Get("oauth_state_id")
	name, ok := p.oauthInstitution(stateID)
	if !ok {
		http.Error(w, "unknown oauth_state_id", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'")
	if err := pageTemplate.ExecuteTemplate(w, "oauth.html.tmpl", bankView{StateID: stateID, Institution: name}); err != nil {
		p.log.Warn("linkpage: rendering", "err", err)
	}
}

// authorizeBank grants access and sends the browser to the link token's
// redirect_uri with oauth_state_id, as the bank would.
func (p *Page) authorizeBank(w http.ResponseWriter, r *http.Request) {
	stateID := r.FormValue("oauth_state_id")
	st, s := p.oauthSession(stateID)
	if s == nil {
		http.Error(w, "unknown oauth_state_id", http.StatusNotFound)
		return
	}
	tok, err := p.backend.LinkToken(s.linkToken)
	if err != nil || (tok.RedirectURI == "" && !st.returnToLink) {
		http.Error(w, "the link token is no longer valid", http.StatusGone)
		return
	}
	returnTo := tok.RedirectURI
	if st.returnToLink {
		returnTo = Prefix + "oauth/return"
	}
	target, err := url.Parse(returnTo)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	st.authorized = true
	p.mu.Unlock()
	q := target.Query()
	q.Set("oauth_state_id", stateID)
	target.RawQuery = q.Encode()
	http.Redirect(w, r, target.String(), http.StatusSeeOther)
}

// serveReturn is where the bank in a Hosted Link popup returns: Plaid's
// own OAuth return page, which closes the popup; the tab that opened it
// carries on (oauthStatus).
func (p *Page) serveReturn(w http.ResponseWriter, r *http.Request) {
	if _, s := p.oauthSession(r.URL.Query().Get("oauth_state_id")); s == nil {
		http.Error(w, "unknown oauth_state_id", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'")
	if err := pageTemplate.ExecuteTemplate(w, "oauth-return.html.tmpl", nil); err != nil {
		p.log.Warn("linkpage: rendering", "err", err)
	}
}

// oauthSession returns an OAuth redirect in flight and its session; a nil
// session when either is unknown. p.mu must not be held.
func (p *Page) oauthSession(stateID string) (*oauthState, *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.oauthSessionLocked(stateID)
}

// oauthSessionLocked is oauthSession with p.mu held.
func (p *Page) oauthSessionLocked(stateID string) (*oauthState, *session) {
	st, ok := p.oauth[stateID]
	if !ok {
		return nil, nil
	}
	return st, p.sessions[st.sessionID]
}

// oauthInstitution returns the name of the institution an OAuth redirect
// is for; false when the redirect is unknown.
func (p *Page) oauthInstitution(stateID string) (string, bool) {
	p.mu.Lock()
	_, s := p.oauthSessionLocked(stateID)
	institutionID := ""
	if s != nil {
		institutionID = s.institutionID
	}
	p.mu.Unlock()
	if institutionID == "" {
		return "", false
	}
	if ins := p.institution(institutionID); ins != nil {
		return ins.Name, true
	}
	return "", false
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newRequestID returns a 15-character id shaped like Plaid's request_id.
func newRequestID() string {
	b := make([]byte, 15)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return string(b)
}
