package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestRESTAPI: the REST client sends the request as protojson with the API
// key, takes the fields the scenarios use from a 200 answer, and refuses a
// 200 answer without them or that is not JSON; an error answer comes back
// as the status in its body.
func TestRESTAPI(t *testing.T) {
	type answer struct {
		code int
		body string
	}
	answers := map[string]answer{}
	var gotBody, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody, gotAuth = string(b), r.Header.Get("Authorization")
		a := answers[r.URL.Path]
		w.WriteHeader(a.code)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	c, closeIdle := newREST(strings.TrimPrefix(srv.URL, "http://"), "key-1", 1)
	defer closeIdle()
	ctx := context.Background()

	answers["/v1/link/token/create"] = answer{200, `{"link_token": "link-1", "expiration": "2026-12-02T03:00:00Z", "webview_url": "https://x"}`}
	lt, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "u-1"})
	if err != nil || lt.GetLinkToken().GetLinkToken() != "link-1" {
		t.Fatalf("CreateLinkToken = %v, %v", lt, err)
	}
	if gotBody != `{"client_user_id":"u-1"}` && gotBody != `{"client_user_id": "u-1"}` || gotAuth != "Bearer key-1" {
		t.Errorf("sent %s with Authorization %q", gotBody, gotAuth)
	}

	tests := []struct {
		name string
		code int
		body string
		want codes.Code
	}{
		{"ErrNoLinkToken", 200, `{"expiration": "2026-12-02T03:00:00Z"}`, codes.Internal},
		{"ErrNotJSON", 200, `{"link_token": `, codes.Internal},
		{"ErrStatus", 400, `{"code": 3, "message": "client_user_id is required"}`, codes.InvalidArgument},
		{"ErrNotAStatus", 502, `bad gateway`, codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers["/v1/link/token/create"] = answer{tt.code, tt.body}
			if _, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "u-1"}); status.Code(err) != tt.want {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}

	// A parsed redirect must be one of the three.
	answers["/v1/link/redirect/parse"] = answer{200, `{"exit": {}}`}
	if _, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: noopURL}); err != nil {
		t.Errorf("ParseRedirect of an exit: %v", err)
	}
	answers["/v1/link/redirect/parse"] = answer{200, `{}`}
	if _, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: noopURL}); status.Code(err) != codes.Internal {
		t.Errorf("ParseRedirect of nothing: %v, want Internal", err)
	}
}
