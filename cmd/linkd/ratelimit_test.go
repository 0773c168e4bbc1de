package main

import (
	"context"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/jwt/jwttest"
)

// TestLinkd_UserRateLimit: an end user calling the methods that reach
// Plaid faster than its bucket allows gets RESOURCE_EXHAUSTED with when to
// retry, over gRPC and REST, and Plaid is not called for it; a service is
// not limited.
func TestLinkd_UserRateLimit(t *testing.T) {
	rateLimitedUser(t, "rate-user", func(t *testing.T, ts *testServer, user linkdv1.LinkServiceClient, as func(string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		for i := range 3 {
			if _, err := user.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{}); err != nil {
				t.Fatalf("call %d within the burst: %v", i, err)
			}
		}
		before := ts.emulator.Calls("/link/token/create")
		_, err := user.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("call past the burst: %v, want ResourceExhausted", err)
		}
		var retry *errdetails.RetryInfo
		for _, d := range status.Convert(err).Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				retry = r
			}
		}
		if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
			t.Errorf("details = %v, want a RetryInfo with a delay", status.Convert(err).Details())
		}
		if n := ts.emulator.Calls("/link/token/create") - before; n != 0 {
			t.Errorf("Plaid calls for a limited call = %d, want 0", n)
		}
		svc := as("svc-key")
		for i := range 5 {
			if _, err := svc.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "rate-user"}); err != nil {
				t.Fatalf("service call %d: %v", i, err)
			}
		}
	})
}

// TestLinkd_UserRateLimit_SubmitRedirect: a redirect that makes linkd call
// Plaid spends the end user's bucket as the RPCs that call Plaid do. An
// INVALID_LINK_TOKEN exit is answered with a fresh link token, made at
// Plaid, and that token's own INVALID_LINK_TOKEN exit with another: without
// the limit an end user limited to a burst of CreateLinkToken calls made
// hundreds of Plaid link tokens a second down that chain, and a connected
// redirect with a made-up public token is a Plaid exchange each; an
// ERROR event reporting INVALID_LINK_TOKEN renews the token as the exit
// does. A service is not limited, nor is another event, which calls nobody.
func TestLinkd_UserRateLimit_SubmitRedirect(t *testing.T) {
	rateLimitedUser(t, "chain-user", func(t *testing.T, ts *testServer, user linkdv1.LinkServiceClient, as func(string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, err := user.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		if err != nil {
			t.Fatalf("CreateLinkToken: %v", err)
		}
		linkToken := tok.GetLinkToken().GetLinkToken()
		const dead = "plaidlink://exit?error_type=INVALID_INPUT&error_code=INVALID_LINK_TOKEN"
		for i := range 2 { // the burst of 3, less the CreateLinkToken
			resp, err := user.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: linkToken, Url: dead})
			if err != nil || resp.GetNewLinkToken() == nil {
				t.Fatalf("renewal %d within the burst: %v, new_link_token %v", i, err, resp.GetNewLinkToken())
			}
			linkToken = resp.GetNewLinkToken().GetLinkToken()
		}
		before := ts.emulator.Calls("/link/token/create") + ts.emulator.Calls("/item/public_token/exchange")
		for _, url := range []string{
			dead,
			"plaidlink://exit?error_type=INVALID_INPUT&error_code=INVALID%5FLINK%5FTOKEN",
			"plaidlink://connected?public_token=public-sandbox-made-up&link_session_id=chain-1",
			"plaidlink://event?event_name=ERROR&error_type=INVALID_INPUT&error_code=INVALID_LINK_TOKEN&link_session_id=chain-3",
		} {
			_, err := user.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: linkToken, Url: url})
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("SubmitRedirect(%s) past the burst: %v, want ResourceExhausted", url, err)
			}
		}
		if n := ts.emulator.Calls("/link/token/create") + ts.emulator.Calls("/item/public_token/exchange") - before; n != 0 {
			t.Errorf("Plaid calls for limited redirects = %d, want 0", n)
		}
		if _, err := user.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: linkToken, Url: "plaidlink://event?event_name=OPEN&link_session_id=chain-2"}); err != nil {
			t.Errorf("an event past the burst: %v, want it recorded", err)
		}
		svc := as("svc-key")
		for i := range 4 {
			resp, err := svc.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: linkToken, Url: dead})
			if err != nil {
				t.Fatalf("service renewal %d: %v", i, err)
			}
			linkToken = resp.GetNewLinkToken().GetLinkToken()
		}
	})
}

// rateLimitedUser runs f over gRPC and REST against a linkd whose end
// users get a burst of 3 calls that reach Plaid and next to no refill: user
// is the client of the end user sub, and as("svc-key") a service's.
func rateLimitedUser(t *testing.T, sub string, f func(t *testing.T, ts *testServer, user linkdv1.LinkServiceClient, as func(string) linkdv1.LinkServiceClient)) {
	k := jwttest.MustECKey(t, "ec-"+sub)
	env := append(userEnv(t, k), "LINKD_API_KEYS=svc-key", "LINKD_USER_RATE=0.001", "LINKD_USER_BURST=3")
	callerTransports(t, env, func(t *testing.T, ts *testServer, as func(string) linkdv1.LinkServiceClient) {
		f(t, ts, as(userToken(t, k, sub)), as)
	})
}
