package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// fuzzRoutes are the REST routes that take a JSON body.
var fuzzRoutes = []string{
	"/v1/link/token/create",
	"/v1/link/redirect/parse",
	"/v1/link/redirect/submit",
	"/v1/item/public_token/exchange",
	"/v1/sandbox/public_token/create",
	"/v1/link/oauth/resume",
}

// FuzzREST posts arbitrary bodies to every JSON route of a real linkd and
// checks that each answer is a deliberate one: never a 5xx other than an
// upstream's 503, always a JSON body, never a crash.
func FuzzREST(f *testing.F) {
	for i, body := range []string{
		`{"client_user_id":"u1"}`,
		`{"url":"plaidlink://event?event_name=OPEN&link_session_id=s"}`,
		`{"url":"plaidlink://connected?public_token=public-sandbox-1&accounts=%5B%5D","link_token":"link-sandbox-1"}`,
		`{"public_token":"public-sandbox-1","client_user_id":"u1"}`,
		`{"institution_id":"ins_109508","initial_products":["transactions"]}`,
		`{"link_token":"link-sandbox-1","received_redirect_uri":"https://a.example/cb?oauth_state_id=x"}`,
		`{"client_user_id":"u1","products":["transactions"],"country_codes":["US"],"redirect_uri":"https://a.example/cb"}`,
		`{"client_user_id":1}`, `[]`, `null`, `{"url":"\u0000"}`, ``,
	} {
		f.Add(uint8(i), []byte(body))
	}
	ts := MustStartServer(f)
	bearer := "Bearer " + ts.APIKey
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		code, resp := ts.Do(t, http.MethodPost, path, bearer, string(body))
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("POST %s %q = %d %s", path, body, code, resp)
		}
		if !json.Valid([]byte(resp)) {
			t.Fatalf("POST %s %q = %d with a body that is not JSON: %s", path, body, code, resp)
		}
		if strings.Contains(resp, "access-sandbox-") {
			t.Fatalf("POST %s answered with an access token", path)
		}
	})
}
