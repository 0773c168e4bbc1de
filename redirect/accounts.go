package redirect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

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
//
// Errors name "accounts" for anything that is not a JSON array, and a path
// such as "accounts[1].meta.number" for a bad value inside one.
func decodeAccounts(s string) ([]*linkdv1.Account, *linkd.Error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(dropTrailingCommas(s)))
	dec.UseNumber() // never convert numbers we are going to reject anyway
	tok, err := dec.Token()
	if err != nil {
		return nil, badJSON(err)
	}
	var accounts []*linkdv1.Account
	switch tok {
	case nil:
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			a, err := decodeAccount(dec, i)
			if err != nil {
				return nil, err
			}
			accounts = append(accounts, a)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, badJSON(err)
		}
	default:
		return nil, linkd.InvalidField("accounts", "accounts must be a JSON array")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, linkd.InvalidField("accounts", "accounts has data after its JSON array")
	}
	return accounts, nil
}

func badJSON(err error) *linkd.Error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return linkd.InvalidField("accounts", "accounts JSON ends early")
	}
	// encoding/json's messages quote at most one character of the input.
	return linkd.InvalidField("accounts", "accounts is not valid JSON: %v", err)
}

// decodeAccount decodes the account object at index i.
func decodeAccount(dec *json.Decoder, i int) (*linkdv1.Account, *linkd.Error) {
	path := func(key string) string { return fmt.Sprintf("accounts[%d]%s", i, key) }
	if tok, err := dec.Token(); err != nil {
		return nil, badJSON(err)
	} else if tok != json.Delim('{') {
		return nil, linkd.InvalidField(path(""), "each account must be a JSON object")
	}
	var f [numAcctFields]assigned
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badJSON(err)
		}
		key, _ := tok.(string) // always a string in key position
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
			if err := decodeMeta(dec, &f, path); err != nil {
				return nil, err
			}
			continue
		default:
			// Plaid adds account fields without notice (balances,
			// official_name, ...); Account has nowhere to keep them.
			if err := skipValue(dec); err != nil {
				return nil, badJSON(err)
			}
			continue
		}
		if err := assignJSONString(dec, &f[field], key, name, path); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, badJSON(err)
	}
	return &linkdv1.Account{
		Id:                 f[acctID].val,
		Name:               f[acctName].val,
		Mask:               f[acctMask].val,
		Type:               f[acctType].val,
		Subtype:            f[acctSubtype].val,
		VerificationStatus: f[acctVerificationStatus].val,
		ClassType:          f[acctClassType].val,
		TransferStatus:     f[acctTransferStatus].val,
	}, nil
}

// decodeMeta decodes an account's "meta" object: {"name": ..., "number": ...}.
func decodeMeta(dec *json.Decoder, f *[numAcctFields]assigned, path func(string) string) *linkd.Error {
	tok, err := dec.Token()
	switch {
	case err != nil:
		return badJSON(err)
	case tok == nil:
		return nil
	case tok != json.Delim('{'):
		return linkd.InvalidField(path(".meta"), "meta must be a JSON object or null")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badJSON(err)
		}
		switch key, _ := tok.(string); key {
		case "name":
			err := assignJSONString(dec, &f[acctName], "meta.name", "meta.name", path)
			if err != nil {
				return err
			}
		case "number":
			err := assignJSONString(dec, &f[acctMask], "meta.number", "meta.number", path)
			if err != nil {
				return err
			}
		default:
			if err := skipValue(dec); err != nil {
				return badJSON(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return badJSON(err)
	}
	return nil
}

// assignJSONString reads a string or null (null is unset) and assigns it to
// a, reached through key, whose modern name is name. Errors name
// path("."+key) for a value that is not a string.
func assignJSONString(dec *json.Decoder, a *assigned, key, name string, path func(string) string) *linkd.Error {
	tok, err := dec.Token()
	if err != nil {
		return badJSON(err)
	}
	var val string
	switch v := tok.(type) {
	case nil:
	case string:
		val = v
	default:
		return linkd.InvalidField(path("."+key), "%s must be a string or null", key)
	}
	if err := a.assign(key, name, val); err != nil {
		err.Field = path("." + err.Field)
		return err
	}
	return nil
}

// skipValue consumes one JSON value of any shape.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// dropTrailingCommas removes each comma that directly precedes a closing ']'
// or '}' outside JSON strings, as in Plaid's pretty-printed example
// ("number": "0000",\n },). A comma right after '[', '{' or another comma is
// left for the decoder to reject: [,] is not a list with a trailing comma.
// Valid JSON never changes meaning, since it has no such comma.
func dropTrailingCommas(s string) string {
	var out []byte
	dropped := false
	inString, escaped := false, false
	var last byte // the last significant byte outside strings; 0 at the start
	kept := 0     // s[:kept] is already in out
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inString = true
		case ',':
			if last != 0 && last != '[' && last != '{' && last != ',' && closesNext(s[i+1:]) {
				out = append(out, s[kept:i]...)
				kept = i + 1
				dropped = true
			}
		}
		last = c
	}
	if !dropped {
		return s
	}
	return string(append(out, s[kept:]...))
}

// closesNext reports whether s, after JSON whitespace, starts with ']' or '}'.
func closesNext(s string) bool {
	s = strings.TrimLeft(s, " \t\n\r")
	return s != "" && (s[0] == ']' || s[0] == '}')
}
