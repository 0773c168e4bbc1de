package plaidemu

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Hosted Link, Link sessions and the LINK webhooks. A link token created
// with hosted_link gets a hosted_link_url (linkd's own Link page, set by
// SetLinkPageURL). Every session of a token that finishes, Hosted Link or
// webview (the page reports both, FinishLinkSession; CompleteLinkSession
// runs one), is listed by /link/token/get, as Plaid lists every session;
// a Hosted Link one sends signed LINK webhooks (EVENTS, ITEM_ADD_RESULT,
// SESSION_FINISHED) to the token's webhook, as Plaid does, and a webview
// one too when SetLinkWebhooksForWebview is on (Plaid's account setting).

// maxURLLifetimeSeconds is Plaid's bound on hosted_link.url_lifetime_seconds:
// 21 days.
const maxURLLifetimeSeconds = 21 * 24 * 3600

// linkSession is one Link session of a link token.
type linkSession struct {
	id                 string
	started, finished  time.Time
	events             []map[string]any
	publicToken        string // "" when the session exited
	institutionID      string
	accountIDs         []string
	exitStatus         string
	exitInstitutionID  string
	exitInstitutionNam string
}

// SetLinkPageURL sets the Link page Hosted Link tokens point at (their
// hosted_link_url is it with ?token=...). Until set, hosted_link_url is
// the emulator's own /hosted-link path, which serves nothing.
func (e *Emulator) SetLinkPageURL(u string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.linkPageURL = u
}

// SetLinkWebhooksForWebview makes webview (non-Hosted) sessions send LINK
// webhooks too, as Plaid does when the account setting is on.
func (e *Emulator) SetLinkWebhooksForWebview(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.linkWebhooksForWebview = on
}

// hostedLinkURL returns the hosted_link_url of token. e.mu is held.
func (e *Emulator) hostedLinkURL(token string) string {
	base := e.linkPageURL
	if base == "" {
		base = e.url + "/hosted-link"
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "token=" + url.QueryEscape(token)
}

// Formats Plaid checks in /link/token/create's user object.
var (
	e164Pattern        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	dateOfBirthPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
	institutionPattern = regexp.MustCompile(`^ins_[0-9]+$`)
	accountFilterTypes = []string{"depository", "credit", "loan", "investment", "other"}
)

// checkLinkTokenOptions checks the options of /link/token/create beyond
// the basics as Plaid's spec does: hosted_link, the user prefill, the
// product lists (known, no overlap with products or each other), account
// filters, transactions.days_requested, update (update mode only) and
// institution_id. It returns hosted_link's presence and values.
func checkLinkTokenOptions(f *fields, products []string, updateMode bool) (hosted bool, completionRedirectURI string, lifetime time.Duration) {
	raw, _ := f.raw("hosted_link")
	hosted = raw != nil
	if hosted {
		completionRedirectURI = f.str("hosted_link.completion_redirect_uri", false)
		if completionRedirectURI != "" {
			switch u, err := url.Parse(completionRedirectURI); {
			case err != nil || u.Scheme == "":
				f.fail("hosted_link.completion_redirect_uri must be a URI")
			case u.Scheme == "javascript" || u.Scheme == "data" || u.Scheme == "vbscript":
				// The page goes there when the session ends: this would
				// run script on the emulator's origin instead.
				f.fail("hosted_link.completion_redirect_uri must be a URI to leave the page for")
			}
		}
		if secs, ok := f.integer("hosted_link.url_lifetime_seconds"); ok {
			if secs <= 0 || secs > maxURLLifetimeSeconds {
				f.fail("hosted_link.url_lifetime_seconds must be positive and at most %d", maxURLLifetimeSeconds)
			}
			lifetime = time.Duration(secs) * time.Second
		}
		f.boolean("hosted_link.is_mobile_app")
	}
	if phone := f.str("user.phone_number", false); phone != "" && !e164Pattern.MatchString(phone) {
		f.fail("user.phone_number must be in E.164 format")
	}
	if email := f.str("user.email_address", false); email != "" && !strings.Contains(email, "@") {
		f.fail("user.email_address must be an email address")
	}
	if dob := f.str("user.date_of_birth", false); dob != "" {
		if _, err := time.Parse("2006-01-02", dob); err != nil || !dateOfBirthPattern.MatchString(dob) {
			f.fail("user.date_of_birth must be a date in YYYY-MM-DD format")
		}
	}
	f.str("user.legal_name", false)
	if raw, _ = f.raw("user.address"); raw != nil {
		f.str("user.address.country", true)
	}
	if slices.Contains(products, "balance") {
		// Plaid's spec: Balance needs no initialization, and balance is
		// not a valid value here either.
		f.fail("products must not contain balance")
	}
	lists := map[string][]string{"products": products}
	for _, name := range []string{"optional_products", "required_if_supported_products", "additional_consented_products"} {
		ps := f.strs(name, false)
		f.oneOf(name, knownProducts, ps...)
		if slices.Contains(ps, "balance") {
			f.fail("%s must not contain balance", name)
		}
		for other, os := range lists {
			for _, p := range ps {
				if slices.Contains(os, p) {
					f.fail("%s and %s must not overlap (%s)", name, other, p)
				}
			}
		}
		lists[name] = ps
	}
	if raw, _ = f.raw("account_filters"); raw != nil {
		var filters map[string]struct {
			AccountSubtypes []string `json:"account_subtypes"`
		}
		if err := json.Unmarshal(raw, &filters); err != nil {
			f.fail("account_filters must be an object of account types")
		}
		for typ, flt := range filters {
			if !slices.Contains(accountFilterTypes, typ) {
				f.fail("account_filters contains an invalid account type; allowed: %s", strings.Join(accountFilterTypes, ", "))
			}
			if len(flt.AccountSubtypes) == 0 {
				f.fail("account_filters.%s.account_subtypes must not be empty", typ)
			}
		}
	}
	f.str("link_customization_name", false)
	if days, ok := f.integer("transactions.days_requested"); ok && (days < 1 || days > 730) {
		f.fail("transactions.days_requested must be between 1 and 730")
	}
	if raw, _ = f.raw("update"); raw != nil && !updateMode {
		f.fail("update may only be set in update mode (with access_token)")
	}
	f.boolean("update.account_selection_enabled")
	if ins := f.str("institution_id", false); ins != "" && !institutionPattern.MatchString(ins) {
		f.fail("institution_id is not a valid institution ID")
	}
	return hosted, completionRedirectURI, lifetime
}

// CompleteLinkSession runs a new Link session of linkToken to its end as a
// user would: linked at institutionID (for an update-mode token, its Item's
// institution when empty) with all of its accounts, or, with exitStatus
// set, exited there. It records the session for /link/token/get, sends the
// LINK webhooks Plaid sends (Hosted Link tokens; webview ones when
// SetLinkWebhooksForWebview is on), delivered before it returns, and
// returns the session's id and its public token ("" for an exit). It
// returns an *Error: INVALID_LINK_TOKEN, INVALID_INSTITUTION, or
// ITEM_NOT_FOUND for an update-mode token whose Item was removed.
func (e *Emulator) CompleteLinkSession(linkToken, institutionID, exitStatus string) (linkSessionID, publicToken string, err error) {
	e.mu.Lock()
	s, perr := e.completeLinkSession(linkToken, institutionID, exitStatus)
	hooks := e.takeOutbox()
	e.mu.Unlock()
	e.deliver(hooks)
	if perr != nil {
		return "", "", perr
	}
	return s.id, s.publicToken, nil
}

// completeLinkSession is CompleteLinkSession with e.mu held.
func (e *Emulator) completeLinkSession(linkToken, institutionID, exitStatus string) (*linkSession, *Error) {
	lt, ok := e.linkTokens[linkToken]
	if !ok {
		return nil, errInvalidLinkToken("was not found")
	}
	if !e.now().Before(lt.expires) {
		return nil, errInvalidLinkToken("has expired")
	}
	if institutionID == "" && lt.accessToken != "" {
		it, err := e.item(lt.accessToken)
		if err != nil {
			return nil, err
		}
		institutionID = it.institutionID
	}
	ins, ok := institution(institutionID)
	if !ok {
		return nil, errInvalidInstitution()
	}
	s := &linkSession{id: uuid.NewString(), started: e.now()}
	at := s.started
	event := func(name string, md map[string]any) {
		md["link_session_id"] = s.id
		md["request_id"] = newRequestID()
		s.events = append(s.events, map[string]any{
			"event_name": name, "event_id": uuid.NewString(),
			"timestamp":      at.UTC().Format("2006-01-02T15:04:05.000Z"),
			"event_metadata": md,
		})
		at = at.Add(time.Millisecond)
	}
	event("OPEN", map[string]any{})
	if lt.accessToken == "" {
		event("TRANSITION_VIEW", map[string]any{"view_name": "SELECT_INSTITUTION"})
		event("SELECT_INSTITUTION", map[string]any{"institution_id": ins.ID, "institution_name": ins.Name})
	}
	event("TRANSITION_VIEW", map[string]any{"view_name": "CREDENTIAL", "institution_id": ins.ID, "institution_name": ins.Name})
	if exitStatus != "" {
		event("EXIT", map[string]any{"exit_status": exitStatus, "institution_id": ins.ID, "institution_name": ins.Name})
		s.exitStatus, s.exitInstitutionID, s.exitInstitutionNam = exitStatus, ins.ID, ins.Name
	} else {
		event("SUBMIT_CREDENTIALS", map[string]any{"institution_id": ins.ID, "institution_name": ins.Name})
		token, err := e.createPublicToken(linkToken, ins.ID, nil)
		if err != nil {
			return nil, err
		}
		s.publicToken, s.institutionID, s.accountIDs = token, ins.ID, slices.Clone(e.publicTokens[token].accountIDs)
		event("TRANSITION_VIEW", map[string]any{"view_name": "CONNECTED", "institution_id": ins.ID, "institution_name": ins.Name})
		event("HANDOFF", map[string]any{"institution_id": ins.ID, "institution_name": ins.Name})
	}
	s.finished = at
	lt.sessions = append(lt.sessions, s)
	e.queueLinkWebhooks(linkToken, lt, s)
	return s, nil
}

// LinkEvent is one event a Link page reports when its session finishes:
// Plaid's event_name, its ISO 8601 timestamp and its metadata (view_name,
// institution_id, ...). The emulator gives it an event_id.
type LinkEvent struct {
	Name      string
	Timestamp string
	Metadata  map[string]string
}

// FinishLinkSession records a Link session a Link page ran for linkToken
// (Hosted Link or webview), as Plaid's Link reports it to Plaid, for
// /link/token/get: linked with publicToken (issued by
// CreatePublicToken for this token, at institutionID with accountIDs), or
// exited with exitStatus, and its events. It sends the LINK webhooks Plaid
// sends (see CompleteLinkSession), delivered before it returns. It returns
// an *Error: INVALID_LINK_TOKEN, or INVALID_FIELD for a public token the
// emulator did not issue or a session finished already.
func (e *Emulator) FinishLinkSession(linkToken, linkSessionID, publicToken, institutionID string, accountIDs []string, exitStatus string, events []LinkEvent) error {
	e.mu.Lock()
	perr := e.finishLinkSession(linkToken, linkSessionID, publicToken, institutionID, accountIDs, exitStatus, events)
	hooks := e.takeOutbox()
	e.mu.Unlock()
	e.deliver(hooks)
	if perr != nil {
		return perr
	}
	return nil
}

// finishLinkSession is FinishLinkSession with e.mu held.
func (e *Emulator) finishLinkSession(linkToken, linkSessionID, publicToken, institutionID string, accountIDs []string, exitStatus string, events []LinkEvent) *Error {
	lt, ok := e.linkTokens[linkToken]
	if !ok {
		return errInvalidLinkToken("was not found")
	}
	for _, old := range lt.sessions {
		if old.id == linkSessionID {
			return errInvalidField("link_session_id has finished already")
		}
	}
	if pt, ok := e.publicTokens[publicToken]; publicToken != "" && !ok {
		return errInvalidField("public_token was not issued by this emulator")
	} else if ok && len(accountIDs) == 0 {
		accountIDs = pt.accountIDs
	}
	s := &linkSession{id: linkSessionID, started: e.now(), finished: e.now(), publicToken: publicToken,
		institutionID: institutionID, accountIDs: slices.Clone(accountIDs), exitStatus: exitStatus}
	if ins, ok := institution(institutionID); ok && publicToken == "" {
		s.exitInstitutionID, s.exitInstitutionNam = ins.ID, ins.Name
	}
	for i, ev := range events {
		md := map[string]any{"link_session_id": linkSessionID}
		for k, v := range ev.Metadata {
			md[k] = v
		}
		if i == 0 {
			if t, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
				s.started = t
			}
		}
		s.events = append(s.events, map[string]any{"event_name": ev.Name, "event_id": uuid.NewString(),
			"timestamp": ev.Timestamp, "event_metadata": md})
	}
	lt.sessions = append(lt.sessions, s)
	e.queueLinkWebhooks(linkToken, lt, s)
	return nil
}

// queueLinkWebhooks queues the LINK webhooks of a finished session, in
// Plaid's order: EVENTS, ITEM_ADD_RESULT (when an Item was added),
// SESSION_FINISHED. e.mu is held.
func (e *Emulator) queueLinkWebhooks(token string, lt *linkToken, s *linkSession) {
	if lt.webhook == "" || (!lt.hosted && !e.linkWebhooksForWebview) {
		return
	}
	base := func(code string) map[string]any {
		return map[string]any{"webhook_type": "LINK", "webhook_code": code, "link_session_id": s.id,
			"link_token": token, "environment": env}
	}
	events := base("EVENTS")
	events["events"] = s.events
	delete(events, "environment")
	e.outbox = append(e.outbox, webhook{url: lt.webhook, body: events})
	finished := base("SESSION_FINISHED")
	finished["status"] = "EXITED"
	if s.publicToken != "" {
		add := base("ITEM_ADD_RESULT")
		add["public_token"] = s.publicToken
		e.outbox = append(e.outbox, webhook{url: lt.webhook, body: add})
		finished["status"] = "SUCCESS"
		finished["public_token"] = s.publicToken
		finished["public_tokens"] = []string{s.publicToken}
	}
	e.outbox = append(e.outbox, webhook{url: lt.webhook, body: finished})
}

// linkTokenGet serves /link/token/get: the token, its metadata and its
// finished sessions with their results.
func (e *Emulator) linkTokenGet(f *fields) (answer, *Error) {
	token := f.str("link_token", true)
	if err := f.err(); err != nil {
		return nil, err
	}
	lt, ok := e.linkTokens[token]
	if !ok {
		return nil, errInvalidLinkToken("was not found")
	}
	sessions := []any{}
	for _, s := range lt.sessions {
		js := map[string]any{
			"link_session_id": s.id,
			"started_at":      s.started.UTC().Format(time.RFC3339),
			"finished_at":     s.finished.UTC().Format(time.RFC3339),
			"events":          s.events,
		}
		if s.publicToken != "" {
			ins, _ := institution(s.institutionID)
			var accounts []any
			for _, a := range e.availableAccounts(ins, lt.accessToken) {
				if slices.Contains(s.accountIDs, a.ID) {
					accounts = append(accounts, map[string]any{"id": a.ID, "name": a.Name, "mask": a.Mask,
						"type": a.Type, "subtype": a.Subtype, "verification_status": nil, "class_type": nil})
				}
			}
			js["results"] = map[string]any{"item_add_results": []any{map[string]any{
				"public_token": s.publicToken,
				"accounts":     accounts,
				"institution":  map[string]any{"name": ins.Name, "institution_id": ins.ID},
			}}}
		} else {
			js["exit"] = map[string]any{"error": nil, "metadata": map[string]any{
				"status":          s.exitStatus,
				"institution":     map[string]any{"name": s.exitInstitutionNam, "institution_id": s.exitInstitutionID},
				"link_session_id": s.id,
				"request_id":      newRequestID(),
			}}
		}
		sessions = append(sessions, js)
	}
	webhook := any(nil)
	if lt.webhook != "" {
		webhook = lt.webhook
	}
	return object{
		"link_token":    token,
		"created_at":    lt.created.UTC().Format(time.RFC3339),
		"expiration":    lt.expires.UTC().Format(time.RFC3339),
		"link_sessions": sessions,
		"metadata": map[string]any{
			"initial_products": lt.products,
			"webhook":          webhook,
			"country_codes":    lt.countryCodes,
			"language":         lt.language,
			"client_name":      lt.clientName,
		},
	}, nil
}
