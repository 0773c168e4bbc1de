package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// restJSONBodies are request bodies, well-formed or not.
var restJSONBodies = map[string]string{
	"OK":                 `{"url": "plaidlink://connected?public_token=p", "link_token": "lt", "client_user_id": "u"}`,
	"OKCamelCase":        `{"linkToken": "lt"}`,
	"OKSpaces":           " \n {\"url\":\"x\"} \n",
	"Empty":              ``,
	"Spaces":             "  \n",
	"ErrTrailingGarbage": `{"url":"x"} trailing`,
	"ErrTwoValues":       `{"url":"x"}{"url":"y"}`,
	"ErrUnknownField":    `{"nope": 1}`,
	"ErrWrongType":       `{"url": 5}`,
	"ErrDuplicateField":  `{"url": "a", "url": "b"}`,
	"ErrNotJSON":         `{"url": `,
	"ErrNull":            `null`,
	"ErrArray":           `[]`,
	"ErrInvalidUTF8":     "{\"url\": \"\xff\"}",
	"ErrControlChar":     "{\"url\": \"a\x01\"}",
	"ErrTrailingComma":   `{"url": "x",}`,
	"ErrUnknownAfterOK":  `{"url": "x"} {"nope": 1}`,
	"ErrGarbageThenJSON": `x{"url": "x"}`,
}

// wantDecode fails t unless restJSON decodes body as jsonPb does: the same
// message, and the same error or none; except that a body JSONPb takes
// only the first value of (protojson refuses it whole) is refused with
// errTrailingData, and a string that is not UTF-8 is named by its field's
// path (badUTF8JSONPath) when it has one.
func wantDecode(t *testing.T, jsonPb *runtime.JSONPb, body string) {
	t.Helper()
	want, got := &linkdv1.SubmitRedirectRequest{}, &linkdv1.SubmitRedirectRequest{}
	wantErr := jsonPb.NewDecoder(strings.NewReader(body)).Decode(want)
	if wantErr == nil && protojson.Unmarshal([]byte(body), &linkdv1.SubmitRedirectRequest{}) != nil {
		wantErr, want = errTrailingData, &linkdv1.SubmitRedirectRequest{}
	}
	if wantErr != nil && strings.Contains(wantErr.Error(), "invalid UTF-8") {
		if path := badUTF8JSONPath([]byte(body)); fieldPathPattern.MatchString(path) {
			wantErr = fmt.Errorf("field %q is not valid UTF-8", path)
		}
	}
	gotErr := restJSON{jsonPb}.NewDecoder(strings.NewReader(body)).Decode(got)
	if (gotErr == nil) != (wantErr == nil) || errors.Is(gotErr, io.EOF) != errors.Is(wantErr, io.EOF) {
		t.Fatalf("error %v, JSONPb's %v", gotErr, wantErr)
	}
	if wantErr != nil && gotErr.Error() != wantErr.Error() {
		t.Errorf("error %q, JSONPb's %q", gotErr, wantErr)
	}
	if !proto.Equal(got, want) {
		t.Errorf("decoded %v, JSONPb %v", got, want)
	}
}

// TestRestJSON_Decode: restJSON decodes every body as grpc-gateway's
// JSONPb does (the same message, an error for the same bodies), parsing
// well-formed ones once.
func TestRestJSON_Decode(t *testing.T) {
	jsonPb := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}
	fast := restJSON{jsonPb}
	for name, body := range restJSONBodies {
		t.Run(name, func(t *testing.T) { wantDecode(t, jsonPb, body) })
	}

	t.Run("ErrTooLarge", func(t *testing.T) {
		// A body over the limit fails as the limit's reader says, not as
		// a parse of what was read before it.
		body := `{"url": "` + strings.Repeat("a", 100) + `"}`
		limited := func() io.Reader {
			return http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(body)), 50)
		}
		wantErr := jsonPb.NewDecoder(limited()).Decode(&linkdv1.SubmitRedirectRequest{})
		gotErr := fast.NewDecoder(limited()).Decode(&linkdv1.SubmitRedirectRequest{})
		if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() {
			t.Fatalf("error %v, JSONPb's %v", gotErr, wantErr)
		}
	})
}

// FuzzRestJSON: any body decodes through restJSON as through JSONPb.
func FuzzRestJSON(f *testing.F) {
	for _, body := range restJSONBodies {
		f.Add(body)
	}
	jsonPb := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}
	f.Fuzz(func(t *testing.T, body string) {
		wantDecode(t, jsonPb, body)
	})
}

// requestIDKey must be RequestIDHeader as net/http keys it.
func TestRequestIDKey(t *testing.T) {
	if got := http.CanonicalHeaderKey(RequestIDHeader); got != requestIDKey {
		t.Errorf("requestIDKey = %q, want %q", requestIDKey, got)
	}
}

// TestBadUTF8JSONPath: the path of the string holding a body's first byte
// that is not UTF-8.
func TestBadUTF8JSONPath(t *testing.T) {
	for body, want := range map[string]string{
		"{\"url\":\"\xff\"}": "url",
		"{\"a\":\"ok\",\"hostedLink\":{\"completionRedirectUri\":\"x\xc3\"}}": "hosted_link.completion_redirect_uri",
		"{\"products\":[\"auth\",\"\xfe\"]}":                                  "products",
		"{\"user\":{\"a\":[{\"b\":1},{\"c\":\"\xff\"}]}}":                     "user.a.c",
		"{\"q\":\"a\\\"},{\",\"url\":\"\xff\"}":                               "url", // braces and an escaped quote inside a string
		"{\"k\xff\":1}":                                                       "",    // in a key: no field to name
		"[\"\xff\"]":                                                          "",    // not in an object member
		"{\"url\":\"ok\"}":                                                    "",    // all UTF-8
	} {
		if got := badUTF8JSONPath([]byte(body)); got != want {
			t.Errorf("badUTF8JSONPath(%q) = %q, want %q", body, got, want)
		}
	}
}
