package plaidemu

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// fields reads a request body the way Plaid validates it: every missing
// required field is collected so that MISSING_FIELDS names them all, and the
// first field of a wrong type or value becomes INVALID_FIELD. A field that
// is absent, null or "" counts as missing.
type fields struct {
	body map[string]json.RawMessage
	// objects are the nested objects raw decoded, by dotted path ("user"),
	// so that reading several of their fields decodes each once; nil for
	// a value that is not an object.
	objects map[string]map[string]json.RawMessage
	missing []string
	invalid *Error
}

// err returns MISSING_FIELDS, else INVALID_FIELD, else nil.
func (f *fields) err() *Error {
	if len(f.missing) > 0 {
		return errMissingFields(f.missing)
	}
	return f.invalid
}

func (f *fields) fail(format string, args ...any) {
	if f.invalid == nil {
		f.invalid = errInvalidField(format, args...)
	}
}

// raw returns the value at a dotted path ("user.client_user_id"). It
// returns missing when the value or a parent is absent or null, and neither
// value nor missing when a parent is not an object (recorded as invalid).
func (f *fields) raw(path string) (v json.RawMessage, missing bool) {
	obj, rest := f.body, path
	for {
		name, tail, nested := strings.Cut(rest, ".")
		v, ok := obj[name]
		if !ok || isNull(v) {
			return nil, true
		}
		if !nested {
			return v, false
		}
		parent := path[:len(path)-len(tail)-1]
		sub, decoded := f.objects[parent]
		if !decoded {
			if err := json.Unmarshal(v, &sub); err != nil {
				sub = nil
			}
			if f.objects == nil {
				f.objects = map[string]map[string]json.RawMessage{}
			}
			f.objects[parent] = sub
		}
		if sub == nil {
			f.fail("%s must be an object", parent)
			return nil, false
		}
		obj, rest = sub, tail
	}
}

// str returns the string at path.
func (f *fields) str(path string, required bool) string {
	v, missing := f.raw(path)
	if v == nil {
		f.need(path, required && missing)
		return ""
	}
	s, ok := unquote(v)
	if !ok {
		if err := json.Unmarshal(v, &s); err != nil {
			f.fail("%s must be a string", path)
			return ""
		}
	}
	if s == "" {
		f.need(path, required)
	}
	return s
}

// strs returns the array of strings at path; a present array must not be
// empty.
func (f *fields) strs(path string, required bool) []string {
	v, missing := f.raw(path)
	if v == nil {
		f.need(path, required && missing)
		return nil
	}
	var ss []string
	if err := json.Unmarshal(v, &ss); err != nil {
		f.fail("%s must be an array of strings", path)
		return nil
	}
	if len(ss) == 0 {
		f.fail("%s must not be empty", path)
	}
	return ss
}

// integer returns the integer at path and whether it is present.
func (f *fields) integer(path string) (int64, bool) {
	v, _ := f.raw(path)
	if v == nil {
		return 0, false
	}
	var n int64
	if err := json.Unmarshal(v, &n); err != nil {
		f.fail("%s must be an integer", path)
		return 0, false
	}
	return n, true
}

// boolean returns the boolean at path (false when absent).
func (f *fields) boolean(path string) bool {
	v, _ := f.raw(path)
	if v == nil {
		return false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		f.fail("%s must be a boolean", path)
	}
	return b
}

// oneOf checks that every value is in allowed.
func (f *fields) oneOf(path string, allowed []string, values ...string) {
	for _, v := range values {
		if v != "" && !slices.Contains(allowed, v) {
			f.fail("%s contains an invalid value; allowed values: %s", path, strings.Join(allowed, ", "))
			return
		}
	}
}

// url checks that a present value is an absolute URL.
func (f *fields) url(path, value string) {
	if value == "" {
		return
	}
	if u, err := url.Parse(value); err != nil || u.Scheme == "" || u.Host == "" {
		f.fail("%s must be an absolute URL", path)
	}
}

func (f *fields) need(path string, required bool) {
	if required {
		f.missing = append(f.missing, path)
	}
}

// unquote returns the string v, a valid JSON value, holds when that needs
// no decoding: a string with no escapes, in valid UTF-8 (encoding/json
// would replace invalid bytes). Else it reports false, for json.Unmarshal
// to decide; most request strings take this path instead of its
// reflection.
func unquote(v json.RawMessage) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || bytes.IndexByte(v, '\\') >= 0 || !utf8.Valid(v) {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

func isNull(v json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// Values Plaid accepts in /link/token/create and /sandbox/public_token/create.
var (
	knownProducts = []string{
		"assets", "auth", "balance", "balance_plus", "beacon", "employment", "identity", "identity_match",
		"identity_verification", "income", "income_verification", "investments", "investments_auth",
		"liabilities", "payment_initiation", "processor_identity", "processor_payments", "profile",
		"recurring_transactions", "signal", "standing_orders", "statements", "transactions",
		"transactions_refresh", "transfer",
	}
	knownCountryCodes = []string{
		"US", "CA", "GB", "IE", "FR", "ES", "NL", "DE", "IT", "PL", "DK", "NO", "SE", "EE", "LT", "LV", "PT", "BE", "AT", "FI",
	}
	knownLanguages = []string{
		"da", "de", "en", "es", "et", "fr", "hi", "it", "lt", "lv", "nl", "no", "pl", "pt", "ro", "sv", "vi",
	}
)
