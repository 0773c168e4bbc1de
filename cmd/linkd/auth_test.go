package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/jwt/jwttest"
)

const (
	testIssuer   = "https://id.example"
	testAudience = "linkd-test"
	testSecret   = "an HS256 secret of at least 32 bytes, for tests"
)

// userEnv starts an issuer on loopback publishing keys as a JWKS, and
// returns the environment that makes linkd trust it and testSecret.
func userEnv(t *testing.T, keys ...jwttest.Key) []string {
	t.Helper()
	jwks := jwttest.JWKS(keys...)
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(issuer.Close)
	return []string{"LINKD_JWT_JWKS=" + issuer.URL + "/.well-known/jwks.json", "LINKD_JWT_HS256_SECRET=" + testSecret,
		"LINKD_JWT_ISSUER=" + testIssuer, "LINKD_JWT_AUDIENCE=" + testAudience}
}

// userToken returns a token for sub signed with k, valid for an hour, with
// the given claims changed.
func userToken(t *testing.T, k jwttest.Key, sub string, changes ...any) string {
	t.Helper()
	c := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	for i := 0; i+1 < len(changes); i += 2 {
		c[changes[i].(string)] = changes[i+1]
	}
	return jwttest.Sign(t, k, c)
}

// callerTransports runs fn over gRPC and over REST, each against its own
// linkd started with env; as returns a client presenting a bearer
// credential (an API key or a user token).
func callerTransports(t *testing.T, env []string, fn func(t *testing.T, ts *testServer, as func(bearer string) linkdv1.LinkServiceClient)) {
	t.Run("gRPC", func(t *testing.T) {
		ts := MustStartServer(t, env...)
		fn(t, ts, func(bearer string) linkdv1.LinkServiceClient {
			conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
					return invoke(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer), method, req, reply, cc, opts...)
				}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return linkdv1.NewLinkServiceClient(conn)
		})
	})
	t.Run("REST", func(t *testing.T) {
		ts := MustStartServer(t, env...)
		fn(t, ts, func(bearer string) linkdv1.LinkServiceClient { return &restClient{base: ts.BaseURL, key: bearer} })
	})
}

// TestLinkd_UserIsolation: an end user acts only for itself and cannot tell
// another user's Items, sessions and link tokens from missing ones; a
// service acts for anyone.
func TestLinkd_UserIsolation(t *testing.T) {
	rsaKey, ecKey := jwttest.MustRSAKey(t, "rsa-2026"), jwttest.MustECKey(t, "ec-2026")
	env := userEnv(t, rsaKey, ecKey)
	callerTransports(t, env, func(t *testing.T, ts *testServer, as func(string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		aliceToken := userToken(t, rsaKey, "alice")
		bobToken := userToken(t, jwttest.HMACKey([]byte(testSecret)), "bob")
		alice, bob, svc := as(aliceToken), as(bobToken), as(ts.APIKey)

		// Bob links an Item with a link token for himself (client_user_id
		// left empty means the token's sub).
		created, err := bob.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		if err != nil || created.GetLinkToken().GetClientUserId() != "bob" {
			t.Fatalf("bob CreateLinkToken = %v, %v; want one for bob", created, err)
		}
		bobLink := created.GetLinkToken().GetLinkToken()
		pt, err := bob.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
		if err != nil {
			t.Fatalf("bob CreateSandboxPublicToken: %v", err)
		}
		sub, err := bob.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(pt.GetPublicToken(), "sess-bob"), LinkToken: bobLink})
		if err != nil || sub.GetItem().GetClientUserId() != "bob" {
			t.Fatalf("bob SubmitRedirect = %v, %v", sub, err)
		}
		bobItem := sub.GetItem().GetItemId()
		if _, err := bob.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: bobItem}); err != nil {
			t.Errorf("bob GetItem(own): %v", err)
		}
		if l, err := bob.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "bob"}); err != nil || len(l.GetItems()) != 1 {
			t.Errorf("bob ListItems(own) = %v, %v", l, err)
		}
		if _, err := bob.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-bob"}); err != nil {
			t.Errorf("bob GetLinkSession(own): %v", err)
		}
		if _, err := bob.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: connectedURL(pt.GetPublicToken(), "s")}); err != nil {
			t.Errorf("bob ParseRedirect: %v", err)
		}

		// Alice cannot see, remove or submit for Bob's things, and gets
		// exactly what a missing record gets.
		_, err = alice.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: bobItem})
		_, errMissing := alice.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: "no-such-item"})
		sameNotFound(t, "GetItem", err, errMissing)
		_, err = alice.RemoveItem(ctx, &linkdv1.RemoveItemRequest{ItemId: bobItem})
		sameNotFound(t, "RemoveItem", err, errMissing)
		if n := ts.emulator.Calls(removePath); n != 0 {
			t.Errorf("Plaid removes after alice's attempt = %d, want 0", n)
		}
		_, err = alice.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-bob"})
		_, errMissing = alice.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "no-such-session"})
		sameNotFound(t, "GetLinkSession", err, errMissing)
		event := eventURL("OPEN", "", "sess-alice", time.Now())
		_, err = alice.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: event, LinkToken: bobLink})
		_, errMissing = alice.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: event, LinkToken: "link-sandbox-00000000-no-such-token"})
		sameNotFound(t, "SubmitRedirect", err, errMissing)
		_, err = alice.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: bobLink, ReceivedRedirectUri: "https://app.example/oauth?oauth_state_id=s1"})
		wantCode(t, err, codes.NotFound)
		// Update mode looks the access token up: only for one's own Items.
		_, err = alice.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ItemId: bobItem})
		_, errMissing = alice.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ItemId: "no-such-item"})
		sameNotFound(t, "CreateLinkToken(update mode)", err, errMissing)
		if upd, err := bob.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ItemId: bobItem}); err != nil || !upd.GetLinkToken().GetUpdateMode() {
			t.Errorf("bob CreateLinkToken(update mode, own) = %v, %v", upd, err)
		}
		// The report spans all users, the sandbox calls reach Plaid: services only.
		_, err = alice.GetLinkConversion(ctx, &linkdv1.GetLinkConversionRequest{})
		wantCode(t, err, codes.PermissionDenied)
		_, err = bob.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: bobItem})
		wantCode(t, err, codes.PermissionDenied)

		// ...nor act in Bob's name.
		_, err = alice.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "bob"})
		wantCode(t, err, codes.PermissionDenied)
		_, err = alice.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "bob"})
		wantCode(t, err, codes.PermissionDenied)
		pt2, err := alice.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
		if err != nil {
			t.Fatalf("alice CreateSandboxPublicToken: %v", err)
		}
		_, err = alice.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt2.GetPublicToken(), ClientUserId: "bob"})
		wantCode(t, err, codes.PermissionDenied)

		// Alice can do her own.
		if tok, err := alice.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "alice"}); err != nil || tok.GetLinkToken().GetClientUserId() != "alice" {
			t.Errorf("alice CreateLinkToken(own) = %v, %v", tok, err)
		}
		ex, err := alice.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt2.GetPublicToken()})
		if err != nil || ex.GetItem().GetClientUserId() != "alice" {
			t.Errorf("alice ExchangePublicToken(own) = %v, %v", ex, err)
		}
		if l, err := alice.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "alice"}); err != nil || len(l.GetItems()) != 1 {
			t.Errorf("alice ListItems(own) = %v, %v; want her one Item", l, err)
		}
		if l, err := as(userToken(t, ecKey, "carol")).ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "carol"}); err != nil || len(l.GetItems()) != 0 {
			t.Errorf("carol (ES256) ListItems(own) = %v, %v; want none", l, err)
		}

		// A service acts for anyone.
		if _, err := svc.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: bobItem}); err != nil {
			t.Errorf("service GetItem: %v", err)
		}
		if l, err := svc.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "bob"}); err != nil || len(l.GetItems()) != 1 {
			t.Errorf("service ListItems(bob) = %v, %v", l, err)
		}
		if _, err := svc.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-bob"}); err != nil {
			t.Errorf("service GetLinkSession: %v", err)
		}
		if _, err := svc.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "bob"}); err != nil {
			t.Errorf("service CreateLinkToken(bob): %v", err)
		}
		if _, err := bob.RemoveItem(ctx, &linkdv1.RemoveItemRequest{ItemId: bobItem}); err != nil {
			t.Errorf("bob RemoveItem(own): %v", err)
		}

		// Tokens that fail verification are UNAUTHENTICATED.
		for name, bad := range map[string]string{
			"expired":        userToken(t, rsaKey, "alice", "exp", time.Now().Add(-time.Hour).Unix()),
			"wrong audience": userToken(t, rsaKey, "alice", "aud", "another-service"),
			"wrong issuer":   userToken(t, ecKey, "alice", "iss", "https://evil.example"),
			"unknown key":    userToken(t, jwttest.MustECKey(t, "ec-forged"), "alice"),
			"malformed":      "not.a.jwt",
		} {
			_, err := as(bad).ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "alice"})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s token: %v, want Unauthenticated", name, err)
			}
		}
		for _, secret := range []string{aliceToken, bobToken, testSecret} {
			if strings.Contains(ts.Logs.String(), secret) {
				t.Errorf("a token or secret appears in the logs")
			}
		}
	})
}

// sameNotFound fails unless got (for another user's record) and missing
// (for no record) are the same NOT_FOUND, so existence does not leak.
func sameNotFound(t *testing.T, what string, got, missing error) {
	t.Helper()
	wantCode(t, got, codes.NotFound)
	if status.Convert(got).Message() != status.Convert(missing).Message() || status.Code(got) != status.Code(missing) {
		t.Errorf("%s: another user's record gives %v, a missing one %v", what, got, missing)
	}
}

// TestMain_ParseFlags_Security: half a TLS or user-token setup is refused
// at start rather than silently serving without it.
func TestMain_ParseFlags_Security(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"TLS cert without key":        {"LINKD_TLS_CERT": "c.pem"},
		"TLS key without cert":        {"LINKD_TLS_KEY": "k.pem"},
		"client CA without cert":      {"LINKD_TLS_CLIENT_CA": "ca.pem"},
		"JWKS without issuer":         {"LINKD_JWT_JWKS": "jwks.json", "LINKD_JWT_AUDIENCE": "a"},
		"secret without audience":     {"LINKD_JWT_HS256_SECRET": testSecret, "LINKD_JWT_ISSUER": "i"},
		"issuer and audience, no key": {"LINKD_JWT_ISSUER": "i", "LINKD_JWT_AUDIENCE": "a"},
	} {
		if err := NewMain().ParseFlags(nil, func(k string) string { return env[k] }); err == nil {
			t.Errorf("%s: ParseFlags succeeded", name)
		}
	}
	// The secret is read from the environment only: there is no flag for it.
	if err := NewMain().ParseFlags([]string{"-jwt-hs256-secret", testSecret}, func(string) string { return "" }); err == nil {
		t.Error("a -jwt-hs256-secret flag exists")
	}
}

// TestMain_ParseFlags_PlaidMode: the emulator runs only when nothing asks
// for real Plaid. PLAID_ENV without credentials is refused rather than
// serving the emulator's fake banks in production.
func TestMain_ParseFlags_PlaidMode(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		wantEnv string // "" means ParseFlags must fail
	}{
		{"Emulator", map[string]string{}, "sandbox"},
		{"Credentials", map[string]string{"PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s"}, "sandbox"},
		{"CredentialsProduction", map[string]string{"PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s", "PLAID_ENV": "production"}, "production"},
		{"ErrProductionNoCredentials", map[string]string{"PLAID_ENV": "production"}, ""},
		{"ErrSandboxNoCredentials", map[string]string{"PLAID_ENV": "sandbox"}, ""},
		{"ErrUnknownEnv", map[string]string{"PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s", "PLAID_ENV": "development"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			err := m.ParseFlags(nil, func(k string) string { return tt.env[k] })
			switch {
			case tt.wantEnv == "" && err == nil:
				t.Fatalf("ParseFlags succeeded with PLAID_ENV %q", m.Config.PlaidEnv)
			case tt.wantEnv == "" && !strings.Contains(err.Error(), "PLAID_"):
				t.Fatalf("error %q does not name the setting", err)
			case tt.wantEnv != "" && err != nil:
				t.Fatalf("ParseFlags: %v", err)
			case tt.wantEnv != "" && m.Config.PlaidEnv != tt.wantEnv:
				t.Fatalf("PlaidEnv = %q, want %q", m.Config.PlaidEnv, tt.wantEnv)
			}
		})
	}
}
