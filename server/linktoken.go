package server

import (
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"time"
	"unicode"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Link token options, as Plaid's /link/token/create checks them, so that a
// mistake is INVALID_ARGUMENT naming linkd's field rather than a Plaid
// error about Plaid's.
var (
	e164Pattern           = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	dateOfBirthPattern    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
	institutionIDPattern  = regexp.MustCompile(`^ins_[0-9]{1,20}$`)
	accountSubtypePattern = regexp.MustCompile(`^[a-z0-9 ]{1,40}$`)
	customizationPattern  = regexp.MustCompile(`^[A-Za-z0-9 _.-]{1,100}$`)
	accountFilterTypes    = []string{"credit", "depository", "investment", "loan", "other"}
)

// Plaid's bounds.
const (
	maxURLLifetimeSeconds = 21 * 24 * 3600 // hosted_link.url_lifetime_seconds: 21 days
	maxDaysRequested      = 730            // transactions.days_requested
	maxPrefillLength      = 256            // linkd's bound on free-text prefill fields and client_name
)

// checkLinkTokenOptions checks the options of a CreateLinkTokenRequest
// beyond the basics, in field order, and returns the first violation
// naming its field. android_package_name is refused outright: Plaid
// takes it only from its native Android SDK, and every token linkd issues
// opens in a webview or as Hosted Link, where OAuth returns through
// redirect_uri.
func checkLinkTokenOptions(req *linkdv1.CreateLinkTokenRequest) error {
	updateMode := req.GetItemId() != ""
	// Link shows client_name to the end user, and Plaid takes it as it
	// comes: control characters or a page of text are a mistake to name
	// here, not a Plaid error about Plaid's field.
	if err := checkText("client_name", req.GetClientName()); err != nil {
		return err
	}
	if req.GetAndroidPackageName() != "" {
		return linkd.InvalidField("android_package_name",
			"android_package_name is for Plaid's native Android SDK only; webview and Hosted Link tokens use redirect_uri")
	}
	if h := req.GetHostedLink(); h != nil {
		if err := checkCompletionRedirectURI(h.GetCompletionRedirectUri()); err != nil {
			return err
		}
		if secs := h.GetUrlLifetimeSeconds(); secs < 0 || secs > maxURLLifetimeSeconds {
			return linkd.InvalidField("hosted_link.url_lifetime_seconds",
				"hosted_link.url_lifetime_seconds must be between 1 and %d (21 days), or 0 for Plaid's default", maxURLLifetimeSeconds)
		}
	}
	if err := checkLinkTokenUser(req.GetUser()); err != nil {
		return err
	}
	lists := []struct {
		field  string
		values []string
	}{
		{"products", req.GetProducts()},
		{"required_if_supported_products", req.GetRequiredIfSupportedProducts()},
		{"optional_products", req.GetOptionalProducts()},
		{"additional_consented_products", req.GetAdditionalConsentedProducts()},
	}
	for i, l := range lists {
		if err := checkEach(l.field, l.values, productPattern, "a Plaid product name"); err != nil {
			return err
		}
		for j, p := range l.values {
			field := fmt.Sprintf("%s[%d]", l.field, j)
			if p == "balance" { // Plaid's spec: not a valid value in any of the lists
				return linkd.InvalidField(field, "%s: balance needs no initialization and is not accepted here", field)
			}
			for _, earlier := range lists[:i] {
				if slices.Contains(earlier.values, p) {
					return linkd.InvalidField(field, "%s: %s is in %s already; the product lists must not overlap", field, p, earlier.field)
				}
			}
		}
	}
	if err := checkAccountFilters(req.GetAccountFilters()); err != nil {
		return err
	}
	if err := checkOptionalPattern("link_customization_name", req.GetLinkCustomizationName(), customizationPattern, "a Link customization name"); err != nil {
		return err
	}
	if days := req.GetTransactions().GetDaysRequested(); days != 0 {
		if days < 1 || days > maxDaysRequested {
			return linkd.InvalidField("transactions.days_requested", "transactions.days_requested must be between 1 and %d", maxDaysRequested)
		}
		if updateMode {
			return linkd.InvalidField("transactions.days_requested", "transactions.days_requested is fixed when the Item is linked; update mode cannot change it")
		}
	}
	if req.GetUpdate() != nil && !updateMode {
		return linkd.InvalidField("update.account_selection_enabled", "update options need item_id (update mode)")
	}
	return checkOptionalPattern("institution_id", req.GetInstitutionId(), institutionIDPattern, "a Plaid institution_id")
}

// scriptSchemes are the URI schemes a browser runs or renders in place
// instead of leaving the page for.
var scriptSchemes = map[string]bool{"javascript": true, "data": true, "vbscript": true, "blob": true, "file": true, "about": true}

// checkCompletionRedirectURI accepts an absolute URI: https, or an app's
// own scheme (Hosted Link in an ASWebAuthenticationSession returns to it).
func checkCompletionRedirectURI(uri string) error {
	const field = "hosted_link.completion_redirect_uri"
	if uri == "" {
		return nil
	}
	u, err := url.Parse(uri)
	switch {
	case err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.Path == ""):
		return linkd.InvalidField(field, "%s is not an absolute URI", field)
	case (u.Scheme == "https" || u.Scheme == "http") && u.Hostname() == "":
		// "https:///done", "https:done" or "https://:443/done": a browser
		// sent there goes nowhere, and the session's end is lost on the
		// user.
		return linkd.InvalidField(field, "%s has no host", field)
	case u.User != nil:
		return linkd.InvalidField(field, "%s must not have user info", field)
	case scriptSchemes[u.Scheme]: // url.Parse lowercases the scheme
		// The page that ends the session goes there: such a URI would run
		// script in that page (the emulator's, on linkd's own origin).
		return linkd.InvalidField(field, "%s must be https or the app's own scheme, not %s:", field, u.Scheme)
	case len(uri) > 2048:
		return linkd.InvalidField(field, "%s is longer than 2048 bytes", field)
	}
	return nil
}

// checkLinkTokenUser checks Plaid's prefill fields.
func checkLinkTokenUser(u *linkdv1.LinkTokenUser) error {
	if u == nil {
		return nil
	}
	if err := checkText("user.legal_name", u.GetLegalName()); err != nil {
		return err
	}
	if p := u.GetPhoneNumber(); p != "" && !e164Pattern.MatchString(p) {
		return linkd.InvalidField("user.phone_number", "user.phone_number must be in E.164 format, e.g. +14155550011")
	}
	if e := u.GetEmailAddress(); e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e || len(e) > 254 {
			return linkd.InvalidField("user.email_address", "user.email_address is not an email address")
		}
	}
	if d := u.GetDateOfBirth(); d != "" {
		t, err := time.Parse(time.DateOnly, d)
		if err != nil || !dateOfBirthPattern.MatchString(d) || t.After(time.Now()) {
			return linkd.InvalidField("user.date_of_birth", "user.date_of_birth must be a past date as YYYY-MM-DD")
		}
	}
	if a := u.GetAddress(); a != nil {
		for _, f := range []struct{ field, value string }{
			{"user.address.street", a.GetStreet()}, {"user.address.street2", a.GetStreet2()},
			{"user.address.city", a.GetCity()}, {"user.address.region", a.GetRegion()},
			{"user.address.postal_code", a.GetPostalCode()},
		} {
			if err := checkText(f.field, f.value); err != nil {
				return err
			}
		}
		if err := checkPattern("user.address.country", a.GetCountry(), countryPattern, "an ISO-3166-1 alpha-2 code"); err != nil {
			return err
		}
	}
	return nil
}

// checkText accepts text of at most maxPrefillLength bytes without
// control characters, line or paragraph separators, or the bidirectional
// overrides and isolates that reorder what is shown after them. Names
// people and apps really have pass: a no-break or ideographic space, an
// emoji joined with U+200D, a soft hyphen, a left-to-right mark.
func checkText(field, v string) error {
	if len(v) > maxPrefillLength {
		return linkd.InvalidField(field, "%s is longer than %d bytes", field, maxPrefillLength)
	}
	for _, r := range v {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) ||
			('\u202a' <= r && r <= '\u202e') || ('\u2066' <= r && r <= '\u2069') {
			return linkd.InvalidField(field, "%s has a character that is not allowed (U+%04X)", field, r)
		}
	}
	return nil
}

// checkAccountFilters checks account_filters: known account types, each
// with subtypes.
func checkAccountFilters(filters map[string]*linkdv1.AccountSubtypes) error {
	types := make([]string, 0, len(filters))
	for typ := range filters {
		types = append(types, typ)
	}
	sort.Strings(types) // report the same field every time
	for _, typ := range types {
		field := "account_filters." + typ
		if !slices.Contains(accountFilterTypes, typ) {
			return linkd.InvalidField(field, "%s: the account type must be one of %v", field, accountFilterTypes)
		}
		subs := filters[typ].GetAccountSubtypes()
		if len(subs) == 0 {
			return linkd.InvalidField(field+".account_subtypes", "%s.account_subtypes must not be empty", field)
		}
		if err := checkEach(field+".account_subtypes", subs, accountSubtypePattern, "a Plaid account subtype"); err != nil {
			return err
		}
	}
	return nil
}
