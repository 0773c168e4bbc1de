package server

import (
	"fmt"
	"net/url"
	"regexp"
	"unicode"

	"github.com/linkd/linkd"
)

// Identifier formats. They are loose enough for every format Plaid has used
// and tight enough that nothing odd reaches a bbolt key or a log line.
var (
	plaidIDPattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	linkTokenPattern   = regexp.MustCompile(`^link-[a-z]+-[A-Za-z0-9-]{1,100}$`)
	publicTokenPattern = regexp.MustCompile(`^public-[a-z]+-[A-Za-z0-9-]{1,100}$`)
	productPattern     = regexp.MustCompile(`^[a-z_]{1,40}$`)
	countryPattern     = regexp.MustCompile(`^[A-Z]{2}$`)
	languagePattern    = regexp.MustCompile(`^[a-z]{2}$`)
	webhookCodePattern = regexp.MustCompile(`^[A-Z_]{1,64}$`)
	// sandboxLoginPattern: Plaid's sandbox test usernames and passwords
	// (user_good, microdeposits_good, error_ITEM_LOCKED, ...).
	sandboxLoginPattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,128}$`)
	// exitStatusPattern is a Link exit status Plaid documents.
	exitStatusPattern = regexp.MustCompile(`^(requires_questions|requires_selections|requires_code|choose_device|requires_credentials|requires_account_selection|requires_oauth|institution_not_found|institution_not_supported)$`)
)

// maxClientUserIDLength bounds client_user_id; Plaid asks for an opaque id,
// not personal data, so 128 characters is plenty.
const maxClientUserIDLength = 128

// checkClientUserID returns EINVALID naming field unless id is 1 to 128
// printable characters.
func checkClientUserID(field, id string) error {
	if id == "" {
		return linkd.InvalidField(field, "%s is required", field)
	}
	if len(id) > maxClientUserIDLength {
		return linkd.InvalidField(field, "%s is longer than %d bytes", field, maxClientUserIDLength)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || r == '/' {
			return linkd.InvalidField(field, "%s has a character that is not allowed", field)
		}
	}
	return nil
}

// checkPattern returns EINVALID naming field unless value matches p; an empty
// value is "required".
func checkPattern(field, value string, p *regexp.Regexp, what string) error {
	if value == "" {
		return linkd.InvalidField(field, "%s is required", field)
	}
	if !p.MatchString(value) {
		return linkd.InvalidField(field, "%s is not %s", field, what)
	}
	return nil
}

// checkOptionalPattern is checkPattern for a field that may be empty.
func checkOptionalPattern(field, value string, p *regexp.Regexp, what string) error {
	if value == "" {
		return nil
	}
	return checkPattern(field, value, p, what)
}

// checkOptionalUserID is checkClientUserID for a field that may be empty.
func checkOptionalUserID(field, id string) error {
	if id == "" {
		return nil
	}
	return checkClientUserID(field, id)
}

// checkEach applies checkPattern to every element, naming the element's index.
func checkEach(field string, values []string, p *regexp.Regexp, what string) error {
	for i, v := range values {
		if !p.MatchString(v) {
			return linkd.InvalidField(fmt.Sprintf("%s[%d]", field, i), "%s[%d] is not %s", field, i, what)
		}
	}
	return nil
}

// checkWebhookURL returns EINVALID naming field unless value is empty or
// an absolute http(s) URL with a host: Plaid POSTs webhooks there, and no
// other scheme (ftp:, file:, mailto:, javascript:) can receive one.
func checkWebhookURL(field, value string) error {
	if value == "" {
		return nil
	}
	u, err := url.Parse(value)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return linkd.InvalidField(field, "%s is not an absolute URL", field)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Hostname() == "" { // "https://:8080/hook" has a port only
		return linkd.InvalidField(field, "%s must be an http or https URL with a host", field)
	}
	return nil
}

// firstError returns the first non-nil error, so a handler validates in
// field order and reports the first field at fault.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
