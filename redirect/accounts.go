package redirect

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Account fields, by where their value can come from.
const (
	acctID = iota
	acctName
	acctMask
	acctType
	acctSubtype
	acctVerificationStatus
	acctClassType
	acctTransferStatus
	numAcctFields
)

// decodeAccounts decodes the connected redirect's "accounts" parameter: a
// JSON array of accounts as Link stringifies them, optionally wrapped in
// single quotes (as Plaid's example is), with trailing commas allowed (as
// Plaid's pretty-printed example has). Empty, ” and null mean no accounts.
// s must be valid UTF-8 (readQuery checks every value).
//
// An account's transfer_status is the Link session's, not the account's
// (Plaid's LinkSessionSuccessMetadata.transfer_status): each one is assigned
// to transfer, unless it is nil, and all must agree.
//
// Errors name "accounts" for anything that is not a JSON array, and a path
// such as "accounts[1].meta.number" for a bad value inside one.
//
// It is a hand-written scanner, not encoding/json: the accounts are the
// bulk of a connected redirect, and a streaming json.Decoder spent most of
// Parse's time and allocations on them. Strings without escapes are
// substrings of s. It accepts, rejects and words its errors as that decoder
// did (accounts_oracle_test.go keeps it as an oracle for FuzzDecodeAccounts).
func decodeAccounts(s string, transfer *assigned) ([]*linkdv1.Account, *linkd.Error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" {
		return nil, nil
	}
	d := jsonScanner{s: s}
	var accounts []*linkdv1.Account
	switch c, ok := d.peek(); {
	case !ok:
		return nil, errEarly()
	case c == '[':
		d.i++
		for i := 0; ; i++ {
			c, ok := d.peek()
			switch {
			case !ok:
				return nil, errEarly()
			case c == ']':
				d.i++
			case c == '}':
				return nil, errChar(c, d.ctxAfterElement(i))
			case i > 0 && c != ',':
				return nil, errChar(c, " after array element")
			default:
				if i > 0 {
					d.i++ // the ','
				}
				a, err := d.account(i, transfer)
				if err != nil {
					return nil, err
				}
				accounts = append(accounts, a)
				continue
			}
			break
		}
	case c == '{':
		return nil, linkd.InvalidField("accounts", "accounts must be a JSON array")
	case c == ']' || c == '}' || c == ',' || c == ':':
		return nil, errChar(c, ctxBeginValue)
	default:
		k, err := d.scalar()
		if err != nil {
			return nil, err
		}
		if k != kindNull {
			return nil, linkd.InvalidField("accounts", "accounts must be a JSON array")
		}
	}
	if _, ok := d.peek(); ok {
		return nil, linkd.InvalidField("accounts", "accounts has data after its JSON array")
	}
	return accounts, nil
}

// Contexts of syntax errors, in encoding/json's words.
const (
	ctxBeginValue = " looking for beginning of value"
	ctxObjectKey  = " looking for beginning of object key string"
	ctxAfterKey   = " after object key"
	ctxAfterPair  = " after object key:value pair"
)

// ctxAfterElement is the context of an unexpected '}' in an array: right
// after '[' Link could still have started a value, later it needed a ','.
func (d *jsonScanner) ctxAfterElement(i int) string {
	if i == 0 {
		return ctxBeginValue
	}
	return " after array element"
}

func errEarly() *linkd.Error {
	return linkd.InvalidField("accounts", "accounts JSON ends early")
}

// errChar reports an unexpected byte. The message quotes that one byte and
// nothing else of the input.
func errChar(c byte, context string) *linkd.Error {
	return linkd.InvalidField("accounts", "accounts is not valid JSON: invalid character %s%s", quoteChar(c), context)
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// jsonScanner reads JSON from s, one value at a time, from s[i].
type jsonScanner struct {
	s string
	i int
}

// scalarKind is the kind of a JSON value that is not an object or an array.
type scalarKind uint8

const (
	kindString scalarKind = iota
	kindNumber
	kindBool
	kindNull
)

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// peek skips whitespace and trailing commas and returns the next byte, or
// false at the end of s.
//
// A trailing comma is one whose previous significant byte is not '[', '{',
// ',' or the start, and whose next one is ']' or '}': Plaid's pretty-printed
// example has them, and they can mean nothing else. Any other comma is left
// for the grammar to accept or reject ([,] is not a list with a trailing
// comma). peek is only called outside strings.
func (d *jsonScanner) peek() (byte, bool) {
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case isSpace(c):
			d.i++
		case c == ',' && d.trailingComma(d.i):
			d.i++
		default:
			return c, true
		}
	}
	return 0, false
}

// trailingComma reports whether the ',' at s[j] is a trailing comma.
func (d *jsonScanner) trailingComma(j int) bool {
	k := j + 1
	for k < len(d.s) && isSpace(d.s[k]) {
		k++
	}
	if k == len(d.s) || d.s[k] != ']' && d.s[k] != '}' {
		return false
	}
	k = j - 1
	for k >= 0 && isSpace(d.s[k]) {
		k--
	}
	return k >= 0 && d.s[k] != '[' && d.s[k] != '{' && d.s[k] != ','
}

// next returns the index of the first byte at or after j that is not a
// trailing comma (a trailing comma is never the last byte). Inside a number
// or a literal, as between tokens, a trailing comma is as good as absent.
func (d *jsonScanner) next(j int) int {
	if j < len(d.s) && d.s[j] == ',' && d.trailingComma(j) {
		return j + 1
	}
	return j
}

// account decodes the account object at index i, assigning its
// transfer_status to transfer (when not nil); the scanner is where a value
// may start.
func (d *jsonScanner) account(i int, transfer *assigned) (*linkdv1.Account, *linkd.Error) {
	if err := d.objectStart(func() *linkd.Error {
		return linkd.InvalidField(acctPath(i, ""), "each account must be a JSON object")
	}); err != nil {
		return nil, err
	}
	var f [numAcctFields]assigned
	err := d.members(func(key string) *linkd.Error {
		var field int
		var name string // the key errors about this field name
		switch key {
		case "_id", "id", "account_id":
			field, name = acctID, "_id"
		case "name":
			field, name = acctName, "meta.name"
		case "mask":
			field, name = acctMask, "meta.number"
		case "type":
			field, name = acctType, key
		case "subtype":
			field, name = acctSubtype, key
		case "verification_status":
			field, name = acctVerificationStatus, key
		case "class_type":
			field, name = acctClassType, key
		case "transfer_status":
			field, name = acctTransferStatus, key
		case "meta":
			return d.meta(&f, i)
		default:
			// Plaid adds account fields without notice (balances,
			// official_name, ...); Account has nowhere to keep them.
			return d.skipValue()
		}
		return d.assignString(&f[field], key, name, i)
	})
	if err != nil {
		return nil, err
	}
	if v := f[acctTransferStatus].val; v != "" && transfer != nil {
		if err := transfer.assign(acctPath(i, ".transfer_status"), "transfer_status", v); err != nil {
			return nil, err
		}
	}
	return &linkdv1.Account{
		Id:                 f[acctID].val,
		Name:               f[acctName].val,
		Mask:               f[acctMask].val,
		Type:               f[acctType].val,
		Subtype:            f[acctSubtype].val,
		VerificationStatus: f[acctVerificationStatus].val,
		ClassType:          f[acctClassType].val,
	}, nil
}

// acctPath names key (".meta.number", or "" for the account itself) in the
// account at index i, as errors do.
func acctPath(i int, key string) string {
	return "accounts[" + strconv.Itoa(i) + "]" + key
}

// meta reads ':' and an account's "meta" object, {"name": ..., "number":
// ...}, or null.
func (d *jsonScanner) meta(f *[numAcctFields]assigned, i int) *linkd.Error {
	notObject := func() *linkd.Error {
		return linkd.InvalidField(acctPath(i, ".meta"), "meta must be a JSON object or null")
	}
	c, err := d.colon()
	if err != nil {
		return err
	}
	if c == 'n' {
		k, err := d.scalar()
		if err != nil || k == kindNull {
			return err
		}
		return notObject()
	}
	if err := d.objectStart(notObject); err != nil {
		return err
	}
	return d.members(func(key string) *linkd.Error {
		switch key {
		case "name":
			return d.assignString(&f[acctName], "meta.name", "meta.name", i)
		case "number":
			return d.assignString(&f[acctMask], "meta.number", "meta.number", i)
		}
		return d.skipValue()
	})
}

// objectStart consumes the '{' of an object where a value may start. Any
// other valid value is notObject's error; invalid JSON is a syntax error.
func (d *jsonScanner) objectStart(notObject func() *linkd.Error) *linkd.Error {
	c, ok := d.peek()
	switch {
	case !ok:
		return errEarly()
	case c == '{':
		d.i++
		return nil
	case c == '[':
		return notObject()
	case c == ']' || c == '}' || c == ',' || c == ':':
		return errChar(c, ctxBeginValue)
	}
	if _, err := d.scalar(); err != nil {
		return err
	}
	return notObject()
}

// members reads an object's members after its '{' up to and including its
// '}', calling value for each key with the scanner before the ':'; value
// must consume the ':' and the value (through assignString, meta or
// skipValue).
func (d *jsonScanner) members(value func(key string) *linkd.Error) *linkd.Error {
	for n := 0; ; n++ {
		c, ok := d.peek()
		switch {
		case !ok:
			return errEarly()
		case c == '}':
			d.i++
			return nil
		case n == 0 && c != '"':
			// encoding/json names no context for this one.
			return errChar(c, "")
		case n > 0 && c != ',':
			return errChar(c, ctxAfterPair)
		}
		if n > 0 {
			d.i++ // the ','
			c, ok = d.peek()
			if !ok {
				return errEarly()
			}
			if c != '"' {
				return errChar(c, ctxObjectKey)
			}
		}
		key, err := d.str(true)
		if err != nil {
			return err
		}
		if err := value(key); err != nil {
			return err
		}
	}
}

// colon consumes the ':' after a key, and reports the byte a value then
// starts with.
func (d *jsonScanner) colon() (byte, *linkd.Error) {
	c, ok := d.peek()
	switch {
	case !ok:
		return 0, errEarly()
	case c != ':':
		return 0, errChar(c, ctxAfterKey)
	}
	d.i++
	c, ok = d.peek()
	switch {
	case !ok:
		return 0, errEarly()
	case c == ']' || c == '}' || c == ',' || c == ':':
		return 0, errChar(c, ctxBeginValue)
	}
	return c, nil
}

// assignString reads ':' and a string or null (null is unset) and assigns it
// to a, reached through key, whose modern name is name, in the account at
// index i. Errors name accounts[i].key for a value that is not a string.
func (d *jsonScanner) assignString(a *assigned, key, name string, i int) *linkd.Error {
	c, err := d.colon()
	if err != nil {
		return err
	}
	var val string
	switch c {
	case '{', '[':
		return linkd.InvalidField(acctPath(i, "."+key), "%s must be a string or null", key)
	case '"':
		if val, err = d.str(true); err != nil {
			return err
		}
	default:
		k, err := d.scalar()
		if err != nil {
			return err
		}
		if k != kindNull {
			return linkd.InvalidField(acctPath(i, "."+key), "%s must be a string or null", key)
		}
	}
	if err := a.assign(key, name, val); err != nil {
		err.Field = acctPath(i, "."+err.Field)
		return err
	}
	return nil
}

// skipValue reads ':' and a value of any shape.
func (d *jsonScanner) skipValue() *linkd.Error {
	if _, err := d.colon(); err != nil {
		return err
	}
	return d.skip()
}

// skip consumes one value of any shape; the scanner is where it starts
// (after peek), and that is not ']', '}', ',' or ':'.
func (d *jsonScanner) skip() *linkd.Error {
	switch d.s[d.i] {
	case '[':
		d.i++
		for n := 0; ; n++ {
			c, ok := d.peek()
			switch {
			case !ok:
				return errEarly()
			case c == ']':
				d.i++
				return nil
			case c == '}':
				return errChar(c, d.ctxAfterElement(n))
			case n > 0 && c != ',':
				return errChar(c, " after array element")
			}
			if n > 0 {
				d.i++ // the ','
				c, ok = d.peek()
				switch {
				case !ok:
					return errEarly()
				case c == ']' || c == '}' || c == ',' || c == ':':
					return errChar(c, ctxBeginValue)
				}
			} else if c == ',' || c == ':' {
				return errChar(c, ctxBeginValue)
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case '{':
		d.i++
		return d.members(func(string) *linkd.Error { return d.skipValue() })
	}
	_, err := d.scalar()
	return err
}

// scalar consumes a string, number, true, false or null starting at s[i]
// and reports its kind. Strings are checked, not decoded.
func (d *jsonScanner) scalar() (scalarKind, *linkd.Error) {
	switch c := d.s[d.i]; {
	case c == '"':
		_, err := d.str(false)
		return kindString, err
	case c == '-' || '0' <= c && c <= '9':
		return kindNumber, d.number()
	case c == 't':
		return kindBool, d.literal("true")
	case c == 'f':
		return kindBool, d.literal("false")
	case c == 'n':
		return kindNull, d.literal("null")
	default:
		return 0, errChar(c, ctxBeginValue)
	}
}

// literal consumes the literal word (true, false, null) at s[i].
func (d *jsonScanner) literal(word string) *linkd.Error {
	j := d.i + 1
	for k := 1; k < len(word); k, j = k+1, j+1 {
		j = d.next(j)
		if j == len(d.s) {
			return errEarly()
		}
		if d.s[j] != word[k] {
			return errChar(d.s[j], " in literal "+word+" (expecting "+quoteChar(word[k])+")")
		}
	}
	d.i = j
	return nil
}

// number consumes a JSON number at s[i]. It stops at the first byte that
// cannot continue it: what follows is the caller's to judge.
func (d *jsonScanner) number() *linkd.Error {
	s, i := d.s, d.i
	digits := func() {
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	// need reports the byte at i when it is not a digit, in context.
	need := func(context string) *linkd.Error {
		i = d.next(i)
		if i == len(s) {
			return errEarly()
		}
		if c := s[i]; c < '0' || c > '9' {
			return errChar(c, context)
		}
		return nil
	}
	if s[i] == '-' {
		i++
		if err := need(" in numeric literal"); err != nil {
			return err
		}
	}
	if s[i] == '0' {
		i++
	} else {
		digits()
	}
	if i < len(s) && s[i] == '.' {
		i++
		if err := need(" after decimal point in numeric literal"); err != nil {
			return err
		}
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if err := need(" in exponent of numeric literal"); err != nil {
			return err
		}
		digits()
	}
	d.i = i
	return nil
}

// str consumes the string at s[i] and, if decode, returns its value: a
// substring of s when it has no escapes. Escapes decode as encoding/json
// does them, a lone surrogate to U+FFFD.
func (d *jsonScanner) str(decode bool) (string, *linkd.Error) {
	s := d.s
	start := d.i + 1
	// Most strings have no escape and no control byte: find the quote.
	if n := indexQuoteOrEscape(s[start:]); n >= 0 && s[start+n] == '"' {
		d.i = start + n + 1
		return s[start : start+n], nil
	}
	escaped := false
	i := start
	for {
		if i == len(s) {
			return "", errEarly()
		}
		c := s[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return "", errChar(c, " in string literal")
		}
		if c != '\\' {
			i++
			continue
		}
		escaped = true
		i++
		if i == len(s) {
			return "", errEarly()
		}
		switch s[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			i++
			for k := 0; k < 4; k, i = k+1, i+1 {
				if i == len(s) {
					return "", errEarly()
				}
				if !ishex(s[i]) {
					return "", errChar(s[i], ` in \u hexadecimal character escape`)
				}
			}
		default:
			return "", errChar(s[i], " in string escape code")
		}
	}
	d.i = i + 1
	if !decode {
		return "", nil
	}
	if !escaped {
		return s[start:i], nil
	}
	return unquoteJSON(s[start:i]), nil
}

// unquoteJSON decodes the escapes of a checked JSON string body.
func unquoteJSON(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch c = s[i+1]; c {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if len(s) >= i+6 && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(s[i+2:])); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
			continue
		default: // '"', '\\', '/'
			b = append(b, c)
		}
		i += 2
	}
	return string(b)
}

// hex4 reads the four hex digits at the start of s, which the scanner
// checked, or returns -1 when s has fewer or not hex ones.
func hex4(s string) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for k := range 4 {
		if !ishex(s[k]) {
			return -1
		}
		r = r<<4 | rune(hexval(s[k]))
	}
	return r
}
