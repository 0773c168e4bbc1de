package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

func TestLinkd_ResumeOAuth(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		const redirectURI = "https://app.example.com/plaid/oauth"
		tok, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", RedirectUri: redirectURI})
		if err != nil {
			t.Fatalf("CreateLinkToken: %v", err)
		}
		linkToken := tok.GetLinkToken().GetLinkToken()

		t.Run("OK", func(t *testing.T) {
			received := redirectURI + "?oauth_state_id=5f9b7d2c-8c1e-4a0e-9d5b-2b8c4f1e6a70"
			resp, err := c.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: linkToken, ReceivedRedirectUri: received})
			if err != nil {
				t.Fatalf("ResumeOAuth: %v", err)
			}
			want := "http://" + ts.HTTPAddr() + "/link/v2/stable/link.html?isWebview=true&token=" + url.QueryEscape(linkToken) +
				"&receivedRedirectUri=https%3A%2F%2Fapp.example.com%2Fplaid%2Foauth%3Foauth_state_id%3D5f9b7d2c-8c1e-4a0e-9d5b-2b8c4f1e6a70"
			if resp.GetWebviewUrl() != want {
				t.Errorf("webview_url =\n %s\nwant\n %s", resp.GetWebviewUrl(), want)
			}
			u, err := url.Parse(resp.GetWebviewUrl())
			if err != nil || u.Query().Get("receivedRedirectUri") != received || u.Query().Get("token") != linkToken {
				t.Errorf("webview_url does not decode back to the token and the received URI: %v", u.Query())
			}
		})

		for _, tt := range []struct {
			name, token, received string
			code                  codes.Code
			field                 string
		}{
			{"ForeignHost", linkToken, "https://evil.example.com/plaid/oauth?oauth_state_id=abc", codes.InvalidArgument, "received_redirect_uri"},
			{"OtherPath", linkToken, "https://app.example.com/other?oauth_state_id=abc", codes.InvalidArgument, "received_redirect_uri"},
			{"OtherScheme", linkToken, "http://app.example.com/plaid/oauth?oauth_state_id=abc", codes.InvalidArgument, "received_redirect_uri"},
			{"NoState", linkToken, redirectURI, codes.InvalidArgument, "received_redirect_uri"},
			{"ExtraParam", linkToken, redirectURI + "?oauth_state_id=abc&next=https://evil.example.com", codes.InvalidArgument, "received_redirect_uri"},
			{"TwoStates", linkToken, redirectURI + "?oauth_state_id=abc&oauth_state_id=def", codes.InvalidArgument, "received_redirect_uri"},
			{"Fragment", linkToken, redirectURI + "?oauth_state_id=abc#x", codes.InvalidArgument, "received_redirect_uri"},
			{"Empty", linkToken, "", codes.InvalidArgument, "received_redirect_uri"},
			{"UnknownToken", "link-sandbox-00000000-0000-0000-0000-000000000000", redirectURI + "?oauth_state_id=abc", codes.InvalidArgument, "link_token"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := c.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: tt.token, ReceivedRedirectUri: tt.received})
				if st := wantCode(t, err, tt.code); st != nil && badRequestField(st) != tt.field {
					t.Errorf("field = %q, want %q", badRequestField(st), tt.field)
				}
			})
		}

		// What the app receives is the URL as a browser or the OS normalized
		// it (WHATWG URL: an empty http(s) path is "/", a default port is
		// dropped or kept as typed): the same place as redirect_uri.
		t.Run("SameURLNormalized", func(t *testing.T) {
			root, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", RedirectUri: "https://app.example.com"})
			if err != nil {
				t.Fatalf("CreateLinkToken: %v", err)
			}
			for _, tt := range []struct{ token, received string }{
				{root.GetLinkToken().GetLinkToken(), "https://app.example.com/?oauth_state_id=abc"},
				{root.GetLinkToken().GetLinkToken(), "https://app.example.com?oauth_state_id=abc"},
				{root.GetLinkToken().GetLinkToken(), "https://app.example.com:443/?oauth_state_id=abc"},
				{linkToken, "https://app.example.com:443/plaid/oauth?oauth_state_id=abc"},
				{linkToken, "HTTPS://App.Example.com/plaid/oauth?oauth_state_id=abc"},
			} {
				if _, err := c.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: tt.token, ReceivedRedirectUri: tt.received}); err != nil {
					t.Errorf("ResumeOAuth(%s): %v", tt.received, err)
				}
			}
			for _, received := range []string{
				"https://app.example.com:8443/plaid/oauth?oauth_state_id=abc",
				"https://app.example.com/plaid/oauth/?oauth_state_id=abc",
				"https://app.example.com/plaid/OAuth?oauth_state_id=abc",
			} {
				_, err := c.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: linkToken, ReceivedRedirectUri: received})
				if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "received_redirect_uri" {
					t.Errorf("ResumeOAuth(%s): field = %q, want received_redirect_uri", received, badRequestField(st))
				}
			}
		})

		t.Run("TokenWithoutRedirectURI", func(t *testing.T) {
			plain, _ := mustLink(t, c, "user-1")
			_, err := c.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: plain.GetLinkToken(), ReceivedRedirectUri: redirectURI + "?oauth_state_id=abc"})
			wantCode(t, err, codes.FailedPrecondition)
		})
	})
}

func TestLinkd_CreateLinkToken_RedirectURI(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	for _, tt := range []struct {
		name, redirectURI, androidPackage, field string
	}{
		{"HTTPS", "https://app.example.com/oauth", "", ""},
		{"HTTPInSandbox", "http://localhost:3000/oauth", "", ""},
		{"AndroidPackage", "", "com.example.app", "android_package_name"}, // native Android SDK only
		{"CustomScheme", "myapp://oauth", "", "redirect_uri"},
		{"Query", "https://app.example.com/oauth?x=1", "", "redirect_uri"},
		{"Fragment", "https://app.example.com/oauth#x", "", "redirect_uri"},
		{"Relative", "/oauth", "", "redirect_uri"},
		{"Both", "https://app.example.com/oauth", "com.example.app", "android_package_name"},
		{"BadPackage", "", "not a package", "android_package_name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{
				ClientUserId: "u", RedirectUri: tt.redirectURI, AndroidPackageName: tt.androidPackage})
			if tt.field == "" {
				if err != nil {
					t.Fatalf("CreateLinkToken: %v", err)
				}
				return
			}
			if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != tt.field {
				t.Errorf("field = %q, want %q", badRequestField(st), tt.field)
			}
		})
	}
}

// TestLinkd_CreateLinkToken_ClientName: a client_name over Plaid's
// documented 30 characters passes through linkd and the emulator, as
// Plaid's /link/token/create takes it; the Link page shows "This
// Application" instead, as Plaid's Link does.
func TestLinkd_CreateLinkToken_ClientName(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	for _, tt := range []struct {
		name, clientName, shown string
	}{
		{"Thirty", "Thirty Characters Exactly Name", "Thirty Characters Exactly Name"},
		{"Long", "The Very Long Name Of A Personal Finance Application", "This Application"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.clientName
			resp, err := c.CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{ClientUserId: "u", ClientName: name})
			if err != nil {
				t.Fatalf("CreateLinkToken(client_name of %d characters): %v", len(name), err)
			}
			page, err := http.Get(resp.GetLinkToken().GetWebviewUrl())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(page.Body)
			page.Body.Close()
			if want := "<b>" + tt.shown + "</b> uses <b>Plaid</b>"; !strings.Contains(string(body), want) {
				t.Errorf("Link page does not read %q", want)
			}
		})
	}
}
