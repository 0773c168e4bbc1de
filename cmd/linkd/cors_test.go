package main

import (
	"net/http"
	"testing"
)

// TestLinkd_CORS: with configured origins, a browser's preflight from one
// of them is answered and the real call carries the allow header; another
// origin gets no CORS header; with none configured, nothing is sent.
func TestLinkd_CORS(t *testing.T) {
	preflight := func(t *testing.T, ts *testServer, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, ts.BaseURL+"/v1/link/token/create", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("Configured", func(t *testing.T) {
		ts := MustStartServer(t, "LINKD_CORS_ORIGINS=https://app.example.com")
		resp := preflight(t, ts, "https://app.example.com")
		if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Fatalf("preflight = %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if resp := preflight(t, ts, "https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("an unlisted origin was allowed: %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
		req, _ := http.NewRequest(http.MethodGet, ts.BaseURL+"/v1/users/user-1/items", nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Authorization", "Bearer "+ts.APIKey)
		got, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got.Body.Close()
		if got.StatusCode != 200 || got.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Fatalf("call from the origin = %d, allow-origin %q", got.StatusCode, got.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("Off", func(t *testing.T) {
		ts := MustStartServer(t)
		if resp := preflight(t, ts, "https://app.example.com"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("CORS answered while off: %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
}
