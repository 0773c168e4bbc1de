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
	k := jwttest.MustECKey(t, "ec-rate")
	env := append(userEnv(t, k), "LINKD_API_KEYS=svc-key", "LINKD_USER_RATE=0.001", "LINKD_USER_BURST=3")
	callerTransports(t, env, func(t *testing.T, ts *testServer, as func(string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		user := as(userToken(t, k, "rate-user"))
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
