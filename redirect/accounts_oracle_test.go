package redirect

// The encoding/json decoder that the hand-written scanner in accounts.go
// replaced, kept as an oracle (verbatim but for transfer_status, which left
// Account): FuzzDecodeAccounts checks that the scanner accepts, rejects and
// words its errors exactly as this did.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"google.golang.org/protobuf/proto"
)

// oracleDecodeAccounts decodes the connected redirect's "accounts" parameter: a
// JSON array of accounts as Link stringifies them, optionally wrapped in
// single quotes (as Plaid's example is), with trailing commas allowed (as
// Plaid's pretty-printed example has). Empty, ” and null mean no accounts.
//
// Errors name "accounts" for anything that is not a JSON array, and a path
// such as "accounts[1].meta.number" for a bad value inside one.
func oracleDecodeAccounts(s string) ([]*linkdv1.Account, *linkd.Error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(oracleDropTrailingCommas(s)))
	dec.UseNumber() // never convert numbers we are going to reject anyway
	tok, err := dec.Token()
	if err != nil {
		return nil, oracleBadJSON(err)
	}
	var accounts []*linkdv1.Account
	switch tok {
	case nil:
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			a, err := oracleDecodeAccount(dec, i)
			if err != nil {
				return nil, err
			}
			accounts = append(accounts, a)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, oracleBadJSON(err)
		}
	default:
		return nil, linkd.InvalidField("accounts", "accounts must be a JSON array")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, linkd.InvalidField("accounts", "accounts has data after its JSON array")
	}
	return accounts, nil
}

func oracleBadJSON(err error) *linkd.Error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return linkd.InvalidField("accounts", "accounts JSON ends early")
	}
	// encoding/json's messages quote at most one character of the input.
	return linkd.InvalidField("accounts", "accounts is not valid JSON: %v", err)
}

// oracleDecodeAccount decodes the account object at index i.
func oracleDecodeAccount(dec *json.Decoder, i int) (*linkdv1.Account, *linkd.Error) {
	path := func(key string) string { return fmt.Sprintf("accounts[%d]%s", i, key) }
	if tok, err := dec.Token(); err != nil {
		return nil, oracleBadJSON(err)
	} else if tok != json.Delim('{') {
		return nil, linkd.InvalidField(path(""), "each account must be a JSON object")
	}
	var f [numAcctFields]assigned
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, oracleBadJSON(err)
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
			if err := oracleDecodeMeta(dec, &f, path); err != nil {
				return nil, err
			}
			continue
		default:
			// Plaid adds account fields without notice (balances,
			// official_name, ...); Account has nowhere to keep them.
			if err := oracleSkipValue(dec); err != nil {
				return nil, oracleBadJSON(err)
			}
			continue
		}
		if err := oracleAssignJSONString(dec, &f[field], key, name, path); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, oracleBadJSON(err)
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

// oracleDecodeMeta decodes an account's "meta" object: {"name": ..., "number": ...}.
func oracleDecodeMeta(dec *json.Decoder, f *[numAcctFields]assigned, path func(string) string) *linkd.Error {
	tok, err := dec.Token()
	switch {
	case err != nil:
		return oracleBadJSON(err)
	case tok == nil:
		return nil
	case tok != json.Delim('{'):
		return linkd.InvalidField(path(".meta"), "meta must be a JSON object or null")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return oracleBadJSON(err)
		}
		switch key, _ := tok.(string); key {
		case "name":
			err := oracleAssignJSONString(dec, &f[acctName], "meta.name", "meta.name", path)
			if err != nil {
				return err
			}
		case "number":
			err := oracleAssignJSONString(dec, &f[acctMask], "meta.number", "meta.number", path)
			if err != nil {
				return err
			}
		default:
			if err := oracleSkipValue(dec); err != nil {
				return oracleBadJSON(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return oracleBadJSON(err)
	}
	return nil
}

// oracleAssignJSONString reads a string or null (null is unset) and assigns it to
// a, reached through key, whose modern name is name. Errors name
// path("."+key) for a value that is not a string.
func oracleAssignJSONString(dec *json.Decoder, a *assigned, key, name string, path func(string) string) *linkd.Error {
	tok, err := dec.Token()
	if err != nil {
		return oracleBadJSON(err)
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

// oracleSkipValue consumes one JSON value of any shape.
func oracleSkipValue(dec *json.Decoder) error {
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

// oracleDropTrailingCommas removes each comma that directly precedes a closing ']'
// or '}' outside JSON strings, as in Plaid's pretty-printed example
// ("number": "0000",\n },). A comma right after '[', '{' or another comma is
// left for the decoder to reject: [,] is not a list with a trailing comma.
// Valid JSON never changes meaning, since it has no such comma.
func oracleDropTrailingCommas(s string) string {
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
			if last != 0 && last != '[' && last != '{' && last != ',' && oracleClosesNext(s[i+1:]) {
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

// oracleClosesNext reports whether s, after JSON whitespace, starts with ']' or '}'.
func oracleClosesNext(s string) bool {
	s = strings.TrimLeft(s, " \t\n\r")
	return s != "" && (s[0] == ']' || s[0] == '}')
}

// FuzzDecodeAccounts checks decodeAccounts against the encoding/json decoder
// it replaced: the same accounts, or an error with the same field and
// message.
func FuzzDecodeAccounts(f *testing.F) {
	for _, s := range oracleSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // readQuery refuses such values before decodeAccounts
		}
		checkOracle(t, s)
	})
}

// TestDecodeAccounts_Oracle compares decodeAccounts with the oracle on every
// one-byte edit (replace, insert, delete) of the fuzz seeds, with the bytes
// JSON's grammar turns on.
func TestDecodeAccounts_Oracle(t *testing.T) {
	const alphabet = `{}[],:\"' -.0123eE+tnufx` + "\t\n\x01"
	for _, s := range oracleSeeds {
		checkOracle(t, s)
		for i := 0; i <= len(s); i++ {
			if i < len(s) {
				checkOracle(t, s[:i]+s[i+1:])
			}
			for k := 0; k < len(alphabet); k++ {
				c := string(alphabet[k])
				checkOracle(t, s[:i]+c+s[i:])
				if i < len(s) {
					checkOracle(t, s[:i]+c+s[i+1:])
				}
			}
		}
	}
}

func checkOracle(t *testing.T, s string) {
	t.Helper()
	{
		got, gotErr := decodeAccounts(s, nil)
		want, wantErr := oracleDecodeAccounts(s)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("decodeAccounts(%q) error %v, oracle %v", s, gotErr, wantErr)
		}
		if gotErr != nil {
			if gotErr.Field != wantErr.Field || gotErr.Message != wantErr.Message {
				t.Fatalf("decodeAccounts(%q) error\n%v\noracle\n%v", s, gotErr, wantErr)
			}
			return
		}
		if len(got) != len(want) {
			t.Fatalf("decodeAccounts(%q) = %d accounts, oracle %d", s, len(got), len(want))
		}
		for i := range got {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("decodeAccounts(%q) account %d = %v, oracle %v", s, i, got[i], want[i])
			}
		}
	}
}

// oracleSeeds are accounts values around every branch of the scanner.
var oracleSeeds = []string{
	``, `''`, `null`, `[]`, ` '[{"_id":"a1"}]' `, `[{}]`, `{"_id":"a1"}`, `"[]"`, `[] []`, `[]x`, `[,]`, `[{,}]`,
	`[{"_id":"a1"},,]`, `,[]`, `[{"_id":"a1"},]`, `[{"_id":"a1", "meta":{"number":"1",} ,}]`, `[{"_id":"a,]"}]`,
	`[{"_id":"QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", "meta": {"name":"Plaid Savings", "number": "0000"}, "subtype": "checking", "type": "depository" }]`,
	"[\n{\n\"_id\": \"ygPnJ\",\n\"meta\": {\n\"name\": \"Plaid Checking\",\n\"number\": \"0000\",\n},\n\"type\": \"depository\",\n\"verification_status\": \"\"\n}\n]",
	`[{"_id":"a1","balances":{"available":100.5e-3,"iso":["USD",null,true,false,-0]},"official_name":"X","meta":{"official":{"a":[1]}}}]`,
	`[{"_id":"a\"1\u00e9,}\ud83d\ude00\ud800\udc00x\ud800\u0041\/\b\f\n\r\t\\"}]`,
	`[{"_id":1}]`, `[{"meta":"x"}]`, `[{"meta":null,"type":null,"class_type":true}]`, `["a1"]`, `[{"_id":"a1"},null]`,
	`[{"_id":"a1","id":"a2"}]`, `[{"mask":"1","meta":{"number":"2"}}]`, `[{"type":"depository","type":"credit"}]`,
	`[{"a":01}]`, `[{"a":1.}]`, `[{"a":-}]`, `[{"a":1e+}]`, `[{"a":tru}]`, `[{"a":nul`, `[{"a" 1}]`, `[{1:2}]`, `[{]`, `[}`,
	`[{"a":1]`, `[{} {}]`, `[{"a":"\x"}]`, `[{"a":"\u12g4"}]`, "[{\"a\":\"\t\"}]", `[{"a":,}]`, `[{"a",}]`, `[{"a":[1,}]}]`,
}
