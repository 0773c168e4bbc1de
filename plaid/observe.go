package plaid

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/linkd/linkd"
)

// Call is one HTTP request to Plaid, as Config.Observe sees it: never a
// token or a user id.
type Call struct {
	// Endpoint is the URL path, e.g. /item/public_token/exchange.
	Endpoint string
	// ErrorCode is Plaid's error_code; "" on success, HTTP_<status> for an
	// error without one, NO_RESPONSE when Plaid did not answer.
	ErrorCode string
	// RequestID is Plaid's request_id, "" without an answer.
	RequestID string
	Duration  time.Duration
}

// maxObservedBody bounds how much of a Plaid response observeTransport
// reads to find its request_id and error_code; linkd's calls answer far
// less.
const maxObservedBody = 4 << 20

// observeTransport reports every request to Plaid to observe and records
// Plaid's request_id in the call's linkd.CallInfo, so that the call's log
// lines name it.
type observeTransport struct {
	next    http.RoundTripper
	observe func(Call)
}

func (t observeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	call := Call{Endpoint: req.URL.Path}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		call.ErrorCode, call.Duration = "NO_RESPONSE", time.Since(start)
		t.report(call)
		return nil, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxObservedBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	call.Duration = time.Since(start)
	call.RequestID, call.ErrorCode = plaidFields(body)
	switch {
	case rerr != nil:
		call.ErrorCode = "NO_RESPONSE"
	case resp.StatusCode >= 400 && call.ErrorCode == "":
		call.ErrorCode = "HTTP_" + strconv.Itoa(resp.StatusCode)
	}
	linkd.CallInfoFrom(req.Context()).AddPlaidRequestID(call.RequestID)
	t.report(call)
	if rerr != nil {
		return nil, rerr
	}
	return resp, nil
}

func (t observeTransport) report(c Call) {
	if t.observe != nil {
		t.observe(c)
	}
}

// CloseIdleConnections passes Client.Close on to the transport beneath.
func (t observeTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// plaidFields returns the request_id and error_code of a Plaid response
// body: exactly what encoding/json decodes into two string fields of those
// names (keys matched case-insensitively, the last of repeated keys wins,
// a null or a value of another type leaves a field alone; both "" when the
// body is not JSON or not an object). It checks the JSON and walks the
// top-level object once, decoding only those two values: decoding every
// answer a second time with encoding/json (plaid-go decodes it too) cost
// ~1.5% of linkd's CPU per connected link, most of it on /accounts/get's
// long answers. FuzzPlaidFields holds it to encoding/json.
func plaidFields(body []byte) (requestID, errorCode string) {
	s := jsonScanner{b: body}
	s.space()
	if !s.consume('{') {
		return "", ""
	}
	s.space()
	if !s.consume('}') {
		for {
			s.space()
			key, ok := s.str()
			if !ok {
				return "", ""
			}
			s.space()
			if !s.consume(':') {
				return "", ""
			}
			s.space()
			var field *string
			switch {
			case bytes.EqualFold(key, []byte("request_id")):
				field = &requestID
			case bytes.EqualFold(key, []byte("error_code")):
				field = &errorCode
			}
			if field != nil && s.peek() == '"' {
				v, ok := s.str()
				if !ok {
					return "", ""
				}
				*field = string(v)
			} else if !s.value(1) {
				return "", ""
			}
			s.space()
			if s.consume(',') {
				continue
			}
			if !s.consume('}') {
				return "", ""
			}
			break
		}
	}
	s.space()
	if s.i != len(s.b) {
		return "", ""
	}
	return requestID, errorCode
}

// maxJSONDepth is encoding/json's bound on nesting: deeper is invalid.
const maxJSONDepth = 10000

// jsonScanner checks JSON text as encoding/json's scanner does, one value
// at a time, from offset i of b.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) consume(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// value skips one JSON value at nesting depth (1 for a value of the
// top-level object) and reports whether it is valid.
func (s *jsonScanner) value(depth int) bool {
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{' || c == '[':
		if depth+1 > maxJSONDepth {
			return false
		}
		s.i++
		s.space()
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if s.consume(end) {
			return true
		}
		for {
			s.space()
			if c == '{' {
				if _, ok := s.str(); !ok {
					return false
				}
				s.space()
				if !s.consume(':') {
					return false
				}
				s.space()
			}
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.consume(',') {
				continue
			}
			return s.consume(end)
		}
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *jsonScanner) literal(word string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

// number skips a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() bool {
	s.consume('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') && !s.digits() {
		return false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits skips [0-9]* and reports whether there was one.
func (s *jsonScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// str reads a JSON string and returns its value: the bytes between the
// quotes when they are plain ASCII without escapes, else what
// encoding/json decodes (escapes resolved, invalid UTF-8 replaced).
func (s *jsonScanner) str() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start, plain := s.i, true
	for s.i < len(s.b) {
		// Most bytes are plain: skip them in a tight loop.
		for s.i < len(s.b) && plainStringByte[s.b[s.i]] {
			s.i++
		}
		if s.i == len(s.b) {
			break
		}
		switch c := s.b[s.i]; {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if plain {
				return raw, true
			}
			return unquoteJSON(s.b[start-1 : s.i]), true
		case c == '\\':
			plain = false
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if !isHex(s.peek()) {
						return nil, false
					}
					s.i++
				}
			default:
				return nil, false
			}
		case c < 0x20:
			return nil, false
		default: // a byte of a multi-byte (or invalid) UTF-8 sequence
			plain = false
			s.i++
		}
	}
	return nil, false
}

// plainStringByte says which bytes stand for themselves in a JSON string:
// printable ASCII but the quote and the backslash.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// unquoteJSON decodes a quoted JSON string already checked by str: the
// rare one with escapes or non-ASCII bytes, left to encoding/json.
func unquoteJSON(quoted []byte) []byte {
	var v string
	json.Unmarshal(quoted, &v) // checked: cannot fail
	return []byte(v)
}
