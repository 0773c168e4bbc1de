// Package redirect parses the plaidlink:// URLs that Plaid Link navigates to
// inside a mobile webview (connected, exit, event) into typed
// linkdv1.WebviewRedirect messages.
//
// The format is Plaid's "Link Webview SDK" page, quirks included: accounts
// JSON wrapped in single quotes, trailing commas in that JSON, the event
// example whose "&event_name=..." sits before the "?", valueless keys, legacy
// key names. Parse is a pure function: no I/O, no clock, no shared state.
//
// Policies, each decided once (redirect_test.go has a case for every one):
//   - Scheme and host are case-insensitive; parameter names are not.
//   - A parameter with no value, or an empty one, is unset.
//   - A repeated parameter must repeat its value; an empty repeat is ignored.
//     A legacy key (error_display_message, link_request_id) must agree with
//     its modern key; a conflict is EINVALID naming the modern key.
//     plaid_api_request_id is not a legacy request_id but another ID (the
//     last Plaid API request's, api_request_id), so it never conflicts with
//     request_id.
//   - Legacy Link's per-account keys (account_id, account_name, account_mask,
//     account_type, account_subtype) are kept as sent on ConnectedResult and
//     folded into accounts, where they must agree with the account they name.
//   - Unknown keys, and keys of another redirect kind (status on a connected),
//     are kept in unrecognized_params, except a non-empty public_token
//     outside connected, which is refused so that a public token is never
//     kept in plain form.
//   - connected needs a public_token and event an event_name; exit needs
//     nothing (a user who just closes Link sends a bare plaidlink://exit).
//   - accounts is JSON, optionally wrapped in single quotes, with trailing
//     commas allowed; null means unset for every string in it; keys Plaid adds
//     to an account are ignored. Link sends it unencoded, so a '%' in it that
//     is not followed by two hex digits is a literal '%' (an account named
//     "Plaid Gold Standard 0% Interest Checking"); anywhere else it is an
//     error. For the same reason an unencoded array runs on past an '&'
//     until it closes ("Checking & Savings"), also when its quotes,
//     apostrophes, brackets or braces came percent-encoded and its '&' did
//     not (WebKit, Chromium, Swift's urlQueryAllowed each encode some of
//     them); JSON with its colons encoded too is encodeURIComponent's,
//     whose first raw '&' ends it. An account's transfer_status
//     is the session's (transfer_status).
//   - '#' and ';' are data, not a fragment or a separator: Link does not
//     encode its JSON, so either can appear inside a value.
//   - Timestamps are RFC 3339 (Z or an offset); a '+' in the offset that
//     arrived unencoded, and so decoded as a space, is read back as '+'.
package redirect

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxURLLength is the longest redirect URL, in bytes, that Parse accepts;
// Parse fails on a longer one with EINVALID naming "url". A connected
// redirect with a few dozen accounts stays well under it.
const MaxURLLength = 16 << 10

// MaxUnrecognizedParams bounds the unknown query parameters Parse keeps.
// Link sends about fifteen keys; hundreds of unknown ones are not Link.
const MaxUnrecognizedParams = 64

// Parse parses a plaidlink:// redirect URL fired by Plaid Link in a webview.
// The result has exactly one of connected, exit or event set.
//
// On failure it returns a *linkd.Error with Code linkd.EINVALID and Field
// naming what is wrong: "url" for the URL as a whole (too long, not
// plaidlink://, unknown host, malformed), otherwise the query parameter or a
// path inside it ("accounts[1].meta.number", "timestamp"). The message never
// quotes a parameter's value (broken accounts JSON is described by at most
// one character), so it cannot leak the public token.
func Parse(rawURL string) (*linkdv1.WebviewRedirect, error) {
	r, err := parse(rawURL)
	if err != nil {
		return nil, err // not a typed nil in a non-nil interface
	}
	return r, nil
}

// kind is a redirect kind, as a bit so that a parameter can list the kinds it
// belongs to.
type kind uint8

const (
	kindConnected kind = 1 << iota
	kindExit
	kindEvent
)

// slot is a known parameter once its aliases are folded together.
type slot uint8

const (
	slotPublicToken slot = iota
	slotInstitutionID
	slotInstitutionName
	slotAccounts
	slotLinkSessionID
	slotAccountID
	slotAccountName
	slotAccountMask
	slotAccountType
	slotAccountSubtype
	slotTransferStatus
	slotStatus
	slotErrorType
	slotErrorCode
	slotErrorMessage
	slotDisplayMessage
	slotRequestID
	slotAPIRequestID
	slotEventName
	slotExitStatus
	slotInstitutionSearchQuery
	slotIsUpdateMode
	slotMatchReason
	slotMfaType
	slotViewName
	slotTimestamp
	slotSelection
	slotRoutingNumber
	slotAccountNumberMask
	slotBrandName
	slotIssueID
	slotIssueDescription
	slotIssueDetectedAt
	numSlots
)

// param says where a known query key goes: its slot, the redirect kinds it
// belongs to, and the modern key name that errors about the slot use.
type param struct {
	slot  slot
	kinds kind
	name  string
}

// lookupParam is the table of every query key linkd knows.
func lookupParam(key string) (param, bool) {
	const (
		conn  = kindConnected
		exit  = kindExit
		event = kindEvent
	)
	switch key {
	case "public_token":
		return param{slotPublicToken, conn, key}, true
	case "institution_id":
		return param{slotInstitutionID, conn | exit | event, key}, true
	case "institution_name":
		return param{slotInstitutionName, conn | exit | event, key}, true
	case "accounts":
		return param{slotAccounts, conn, key}, true
	case "link_session_id":
		return param{slotLinkSessionID, conn | exit | event, key}, true
	case "account_id": // legacy Link: the one selected account
		return param{slotAccountID, conn, key}, true
	case "account_name": // legacy Link
		return param{slotAccountName, conn, key}, true
	case "account_mask": // legacy Link
		return param{slotAccountMask, conn, key}, true
	case "account_type": // legacy Link
		return param{slotAccountType, conn, key}, true
	case "account_subtype": // legacy Link
		return param{slotAccountSubtype, conn, key}, true
	case "transfer_status":
		return param{slotTransferStatus, conn, key}, true
	case "status":
		return param{slotStatus, exit, key}, true
	case "error_type":
		return param{slotErrorType, exit | event, key}, true
	case "error_code":
		return param{slotErrorCode, exit | event, key}, true
	case "error_message":
		return param{slotErrorMessage, exit | event, key}, true
	case "display_message", "error_display_message":
		return param{slotDisplayMessage, exit | event, "display_message"}, true
	case "request_id", "link_request_id":
		return param{slotRequestID, exit | event, "request_id"}, true
	case "plaid_api_request_id":
		return param{slotAPIRequestID, exit | event, key}, true
	case "event_name":
		return param{slotEventName, event, key}, true
	case "exit_status":
		return param{slotExitStatus, event, key}, true
	case "institution_search_query":
		return param{slotInstitutionSearchQuery, event, key}, true
	case "is_update_mode":
		return param{slotIsUpdateMode, event, key}, true
	case "match_reason":
		return param{slotMatchReason, event, key}, true
	case "mfa_type":
		return param{slotMfaType, event, key}, true
	case "view_name":
		return param{slotViewName, event, key}, true
	case "timestamp":
		return param{slotTimestamp, event, key}, true
	case "selection":
		return param{slotSelection, event, key}, true
	case "routing_number":
		return param{slotRoutingNumber, event, key}, true
	case "account_number_mask":
		return param{slotAccountNumberMask, event, key}, true
	case "brand_name":
		return param{slotBrandName, event, key}, true
	case "issue_id":
		return param{slotIssueID, event, key}, true
	case "issue_description":
		return param{slotIssueDescription, event, key}, true
	case "issue_detected_at":
		return param{slotIssueDetectedAt, event, key}, true
	}
	return param{}, false
}

// assigned is a value and the key that set it, so that a conflict can name
// the key that was repeated, or the modern key when two aliases disagree.
type assigned struct {
	val, from string
}

// assign records val, reached through key, for a parameter whose modern name
// is name. An empty val means unset and never conflicts. A conflict returns
// an EINVALID error blaming key if it was repeated, else the modern name.
func (a *assigned) assign(key, name, val string) *linkd.Error {
	switch {
	case val == "" || val == a.val:
		return nil
	case a.val == "":
		a.val, a.from = val, key
		return nil
	case a.from == key:
		return conflict(key, key, key)
	default:
		return conflict(name, a.from, key)
	}
}

// parser holds the parameters of one redirect while its query is read.
type parser struct {
	kind         kind
	vals         [numSlots]assigned
	unrecognized map[string]string
}

func parse(raw string) (*linkdv1.WebviewRedirect, *linkd.Error) {
	if len(raw) > MaxURLLength {
		return nil, linkd.InvalidField("url", "redirect URL is longer than %d bytes", MaxURLLength)
	}
	if hasControl(raw) {
		return nil, linkd.InvalidField("url", "redirect URL contains a control character")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.EqualFold(scheme, "plaidlink") {
		return nil, linkd.InvalidField("url", "redirect URL must start with plaidlink://")
	}

	// The host ends where the query starts. Plaid's event example puts
	// "&event_name=..." straight after the host, so '&' ends it too.
	host, tail := rest, ""
	if i := strings.IndexAny(rest, "/?&#"); i >= 0 {
		host, tail = rest[:i], rest[i:]
	}
	p := parser{}
	switch {
	case strings.EqualFold(host, "connected"):
		p.kind = kindConnected
	case strings.EqualFold(host, "exit"):
		p.kind = kindExit
	case strings.EqualFold(host, "event"):
		p.kind = kindEvent
	default:
		return nil, linkd.InvalidField("url", "redirect host must be connected, exit or event")
	}

	// One '/' before the query is harmless (some webviews normalize to it).
	tail = strings.TrimPrefix(tail, "/")
	var pre, query string
	switch {
	case tail == "":
	case tail[0] == '?':
		query = tail[1:]
	case tail[0] == '&':
		// plaidlink://event&event_name=X?error_type=...: parameters before the
		// first '?' count as much as those after it.
		pre, query, _ = strings.Cut(tail[1:], "?")
	default:
		return nil, linkd.InvalidField("url", "redirect URL has a path or fragment after the host; want a query")
	}
	if err := p.readQuery(pre); err != nil {
		return nil, err
	}
	if err := p.readQuery(query); err != nil {
		return nil, err
	}

	r := &linkdv1.WebviewRedirect{UnrecognizedParams: p.unrecognized}
	switch p.kind {
	case kindConnected:
		c, err := p.connected()
		if err != nil {
			return nil, err
		}
		r.Result = &linkdv1.WebviewRedirect_Connected{Connected: c}
	case kindExit:
		r.Result = &linkdv1.WebviewRedirect_Exit{Exit: p.exit()}
	default:
		e, err := p.event()
		if err != nil {
			return nil, err
		}
		r.Result = &linkdv1.WebviewRedirect_Event{Event: e}
	}
	return r, nil
}

// readQuery reads '&'-separated key=value pairs. Only '&' separates: ';' and
// '#' are data (see the package comment).
func (p *parser) readQuery(q string) *linkd.Error {
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		key, val, _ := strings.Cut(pair, "=")
		// Plain ASCII, the common case, needs neither decoding nor a UTF-8
		// check.
		if !plainASCII(key) {
			var ok bool
			if key, ok = unescape(key, false); !ok || !utf8.ValidString(key) {
				return linkd.InvalidField("url", "a query parameter name has invalid percent-encoding or is not UTF-8")
			}
		}
		if key == "" {
			return linkd.InvalidField("url", "a query parameter has a value but no name")
		}
		if key == "accounts" && q != "" && scanRawArray(val) && rawArrayEnd(val) < 0 {
			// Link does not encode its accounts JSON either: an '&' in
			// an account's name ("Checking & Savings") did not end the
			// value if the array closes only after it, even when the
			// cut ends in ']' ("Card [Visa]&Co"); not for an encoder
			// that encodes '&' as well (scanRawArray).
			whole := val + "&" + q
			if n := rawArrayEnd(whole); n > 0 {
				val, q, _ = strings.Cut(whole[n:], "&")
				val = whole[:n] + val
			}
		}
		if !plainASCII(val) {
			// Link does not encode its accounts JSON: a '%' there that
			// starts no escape is the account name's own.
			var ok bool
			if val, ok = unescape(val, key == "accounts"); !ok {
				return linkd.InvalidField(key, "value has invalid percent-encoding")
			}
			if !utf8.ValidString(val) {
				return linkd.InvalidField(key, "value is not UTF-8 once percent-decoded")
			}
		}
		if err := p.add(key, val); err != nil {
			return err
		}
	}
	return nil
}

// scanRawArray reports whether an accounts value cut at a raw '&' may be
// a JSON array that runs on past it: its '[' came raw, or came encoded
// while its colons did not. An encoder that encodes '[' and ':' alike
// (encodeURIComponent, as Plaid's own redirects) encodes '&' too, so its
// cut is whole and is not scanned.
func scanRawArray(val string) bool {
	i := rawArrayStart(val)
	return i >= 0 && (val[i] == '[' || strings.IndexByte(val, ':') >= 0)
}

// rawArrayStart returns the index of the '[' (or its %5B) that s starts
// with, after an optional single quote (or its %27), or -1.
func rawArrayStart(s string) int {
	i := 0
	if i < len(s) {
		if c, n := jsonByte(s, i); c == '\'' {
			i = n
		}
	}
	if i < len(s) {
		if c, _ := jsonByte(s, i); c == '[' {
			return i
		}
	}
	return -1
}

// jsonByte returns the byte of JSON at s[i] and how many bytes of s it
// takes: a percent-encoded quote, apostrophe, bracket, brace or backslash
// counts as that byte. Webviews and apps encode some of these and leave
// others, and '&', raw: WebKit encodes '"' and spaces only; Chromium
// (Android WebView) also encodes the apostrophe (%27); Swift's
// urlQueryAllowed and java.net.URI also encode brackets, braces and '\'.
func jsonByte(s string, i int) (byte, int) {
	if c := s[i]; c != '%' || i+2 >= len(s) {
		return c, 1
	}
	if hi, lo := hexval(s[i+1]), hexval(s[i+2]); hi|lo < 16 {
		if d := hi<<4 | lo; d == '"' || d == '\'' || d == '[' || d == ']' || d == '{' || d == '}' || d == '\\' {
			return d, 3
		}
	}
	return '%', 1
}

// rawArrayEnd returns the length of the unencoded JSON array that s starts
// with (after an optional single quote, as in Plaid's example), reading
// strings and nesting so that '&', ']' and '}' inside a string are data;
// -1 when s does not start with a raw '[' or the array does not close in s.
// The bytes that shape JSON may come percent-encoded (jsonByte), as
// webviews and apps hand the URL over, while '&' stays raw. It only finds
// where the array ends: decodeAccounts judges the JSON.
func rawArrayEnd(s string) int {
	i := rawArrayStart(s)
	if i < 0 {
		return -1
	}
	depth, inString := 0, false
	for i < len(s) {
		c, n := s[i], 1
		if c == '%' { // the one byte jsonByte may read more of
			c, n = jsonByte(s, i)
		}
		i += n
		switch {
		case inString && c == '\\':
			// Skip the escaped character, which may be an encoded quote.
			if i < len(s) {
				_, n := jsonByte(s, i)
				i += n
			}
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

func (p *parser) add(key, val string) *linkd.Error {
	if prm, ok := lookupParam(key); ok {
		if prm.kinds&p.kind != 0 {
			return p.vals[prm.slot].assign(key, prm.name, val)
		}
		if prm.slot == slotPublicToken {
			if val == "" {
				return nil // unset, and nothing to keep
			}
			return linkd.InvalidField(key, "a public_token belongs only in a plaidlink://connected redirect")
		}
	}
	// Unknown, or another kind's key: keep it so that nothing Link sent is lost.
	if p.unrecognized == nil {
		p.unrecognized = make(map[string]string)
	}
	old, seen := p.unrecognized[key]
	if !seen && len(p.unrecognized) >= MaxUnrecognizedParams {
		return linkd.InvalidField("url", "redirect URL has more than %d query parameters linkd does not know", MaxUnrecognizedParams)
	}
	switch {
	case !seen || old == "":
		p.unrecognized[key] = val
	case val != "" && val != old:
		return conflict(key, key, key)
	}
	return nil
}

// conflict reports that keys first and second gave field different values.
func conflict(field, first, second string) *linkd.Error {
	if first == second {
		return linkd.InvalidField(field, "%s is given twice with different values", first)
	}
	return linkd.InvalidField(field, "%s and %s are given with different values", first, second)
}

func (p *parser) get(s slot) string { return p.vals[s].val }

func (p *parser) connected() (*linkdv1.ConnectedResult, *linkd.Error) {
	if p.get(slotPublicToken) == "" {
		return nil, linkd.InvalidField("public_token", "a connected redirect must carry a public_token")
	}
	accounts, err := decodeAccounts(p.get(slotAccounts), &p.vals[slotTransferStatus])
	if err != nil {
		return nil, err
	}
	c := &linkdv1.ConnectedResult{
		PublicToken:     p.get(slotPublicToken),
		InstitutionId:   p.get(slotInstitutionID),
		InstitutionName: p.get(slotInstitutionName),
		LinkSessionId:   p.get(slotLinkSessionID),
		TransferStatus:  p.get(slotTransferStatus),
		AccountId:       p.get(slotAccountID),
		AccountName:     p.get(slotAccountName),
		AccountMask:     p.get(slotAccountMask),
		AccountType:     p.get(slotAccountType),
		AccountSubtype:  p.get(slotAccountSubtype),
	}
	if c.Accounts, err = mergeLegacyAccount(accounts, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *parser) exit() *linkdv1.ExitResult {
	return &linkdv1.ExitResult{
		Status:          p.get(slotStatus),
		Error:           p.linkError(),
		InstitutionId:   p.get(slotInstitutionID),
		InstitutionName: p.get(slotInstitutionName),
		LinkSessionId:   p.get(slotLinkSessionID),
		RequestId:       p.get(slotRequestID),
		ApiRequestId:    p.get(slotAPIRequestID),
	}
}

func (p *parser) event() (*linkdv1.LinkEvent, *linkd.Error) {
	if p.get(slotEventName) == "" {
		return nil, linkd.InvalidField("event_name", "an event redirect must carry an event_name")
	}
	var updateMode bool
	switch s := p.get(slotIsUpdateMode); {
	case s == "" || strings.EqualFold(s, "false"):
	case strings.EqualFold(s, "true"):
		updateMode = true
	default:
		return nil, linkd.InvalidField("is_update_mode", `is_update_mode must be "true" or "false"`)
	}
	ts, err := parseTimestamp(p.get(slotTimestamp), "timestamp")
	if err != nil {
		return nil, err
	}
	issueAt, err := parseTimestamp(p.get(slotIssueDetectedAt), "issue_detected_at")
	if err != nil {
		return nil, err
	}
	return &linkdv1.LinkEvent{
		EventName:              p.get(slotEventName),
		Error:                  p.linkError(),
		ExitStatus:             p.get(slotExitStatus),
		InstitutionId:          p.get(slotInstitutionID),
		InstitutionName:        p.get(slotInstitutionName),
		InstitutionSearchQuery: p.get(slotInstitutionSearchQuery),
		IsUpdateMode:           updateMode,
		MatchReason:            p.get(slotMatchReason),
		MfaType:                p.get(slotMfaType),
		ViewName:               p.get(slotViewName),
		RequestId:              p.get(slotRequestID),
		LinkSessionId:          p.get(slotLinkSessionID),
		Timestamp:              ts,
		Selection:              p.get(slotSelection),
		RoutingNumber:          p.get(slotRoutingNumber),
		AccountNumberMask:      p.get(slotAccountNumberMask),
		ApiRequestId:           p.get(slotAPIRequestID),
		BrandName:              p.get(slotBrandName),
		IssueId:                p.get(slotIssueID),
		IssueDescription:       p.get(slotIssueDescription),
		IssueDetectedAt:        issueAt,
	}, nil
}

// linkError groups the error parameters; nil when Link sent none, so that
// "no error" and "an error with empty fields" cannot be confused.
func (p *parser) linkError() *linkdv1.LinkError {
	e := &linkdv1.LinkError{
		ErrorType:      p.get(slotErrorType),
		ErrorCode:      p.get(slotErrorCode),
		ErrorMessage:   p.get(slotErrorMessage),
		DisplayMessage: p.get(slotDisplayMessage),
	}
	if e.ErrorType == "" && e.ErrorCode == "" && e.ErrorMessage == "" && e.DisplayMessage == "" {
		return nil
	}
	return e
}

// parseTimestamp reads an RFC 3339 timestamp, the ISO 8601 profile Link
// emits (2017-09-14T14:42:19.350Z), from the parameter named field; nil when
// s is empty.
func parseTimestamp(s, field string) (*timestamppb.Timestamp, *linkd.Error) {
	if s == "" {
		return nil, nil
	}
	// "...50.542+02:00" sent unencoded arrives as "...50.542 02:00": the
	// space can only have been a '+'.
	if n := len(s); n > 6 && s[n-6] == ' ' && s[n-3] == ':' {
		s = s[:n-6] + "+" + s[n-5:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, linkd.InvalidField(field, "%s must be ISO 8601 (RFC 3339) such as 2017-09-14T14:42:19.350Z", field)
	}
	ts := timestamppb.New(t)
	if ts.CheckValid() != nil {
		return nil, linkd.InvalidField(field, "%s is outside years 0001 to 9999", field)
	}
	return ts, nil
}

// unescape decodes a query key or value: "+" and "%20" are spaces. A '%' not
// followed by two hex digits is kept as it is if keepPercent, else unescape
// reports false. It allocates only when s has something to decode, and
// reads s once.
func unescape(s string, keepPercent bool) (string, bool) {
	i := indexEscape(s)
	if i < 0 {
		return s, true
	}
	// Decoded bytes go through a stack buffer into one Builder: one
	// allocation, and no copy for the string.
	var out strings.Builder
	out.Grow(len(s))
	out.WriteString(s[:i])
	var buf [256]byte
	n := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case c != '%':
		case i+2 < len(s) && hexval(s[i+1])|hexval(s[i+2]) < 16:
			c = hexval(s[i+1])<<4 | hexval(s[i+2])
			i += 2
		case !keepPercent:
			return "", false
		}
		buf[n] = c
		if n++; n == len(buf) {
			out.Write(buf[:])
			n = 0
		}
	}
	out.Write(buf[:n])
	return out.String(), true
}

func ishex(c byte) bool { return hexval(c) < 16 }

// hexval returns the value of the hex digit c, or 0xff if c is not one.
func hexval(c byte) byte {
	if d := c - '0'; d < 10 {
		return d
	}
	if d := c | 0x20 - 'a'; d < 6 { // c|0x20 lowercases a letter
		return d + 10
	}
	return 0xff
}

// mergeLegacyAccount folds legacy Link's per-account keys, kept on c (the
// one account the user selected), into accounts: they become the only
// account when accounts is empty, and otherwise fill or must agree with the
// account that account_id, or without it account_name, names. Without
// either, the others name no account and stay only on c.
func mergeLegacyAccount(accounts []*linkdv1.Account, c *linkdv1.ConnectedResult) ([]*linkdv1.Account, *linkd.Error) {
	id, name := c.AccountId, c.AccountName
	if len(accounts) == 0 {
		if id == "" && name == "" && c.AccountMask == "" && c.AccountType == "" && c.AccountSubtype == "" {
			return nil, nil
		}
		return []*linkdv1.Account{{Id: id, Name: name, Mask: c.AccountMask, Type: c.AccountType, Subtype: c.AccountSubtype}}, nil
	}
	if id == "" && name == "" {
		return accounts, nil
	}
	var match *linkdv1.Account
	for _, a := range accounts {
		if id != "" && a.Id == id || id == "" && a.Name == name {
			match = a
			break
		}
	}
	switch {
	case match == nil && id != "":
		return nil, linkd.InvalidField("account_id", "account_id names no account in accounts")
	case match == nil:
		return nil, linkd.InvalidField("account_name", "account_name names no account in accounts")
	}
	for _, f := range []struct {
		val, key, what string
		dst            *string
	}{
		{name, "account_name", "name", &match.Name},
		{c.AccountMask, "account_mask", "mask", &match.Mask},
		{c.AccountType, "account_type", "type", &match.Type},
		{c.AccountSubtype, "account_subtype", "subtype", &match.Subtype},
	} {
		switch {
		case f.val == "":
		case *f.dst == "":
			*f.dst = f.val
		case *f.dst != f.val:
			return nil, linkd.InvalidField(f.key, "%s differs from the %s of that account in accounts", f.key, f.what)
		}
	}
	return accounts, nil
}
