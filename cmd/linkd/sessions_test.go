package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// One link token opens at most MaxSessionsPerLinkToken Link sessions: the
// next fresh session id is RESOURCE_EXHAUSTED naming the limit, with the
// time until the token expires to wait, while its sessions still take
// events and another token is not held back.
func TestLinkd_SessionsPerLinkToken(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, _ := mustLink(t, c, "user-1")
		t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
		session := func(i int) string { return fmt.Sprintf("79e772be-547d-4c9c-8b76-%012d", i) }
		submit := func(tok *linkdv1.LinkToken, i int, name string) error {
			_, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
				Url: eventURL(name, "", session(i), t0.Add(time.Duration(i)*time.Second)), LinkToken: tok.GetLinkToken(),
			})
			return err
		}
		for i := range linkd.MaxSessionsPerLinkToken {
			if err := submit(tok, i, "OPEN"); err != nil {
				t.Fatalf("SubmitRedirect(session %d): %v", i, err)
			}
		}
		err := submit(tok, linkd.MaxSessionsPerLinkToken, "OPEN")
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("SubmitRedirect past the bound: %v, want ResourceExhausted", err)
		}
		var reason string
		var retry time.Duration
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				reason = d.GetReason()
			case *errdetails.RetryInfo:
				retry = d.GetRetryDelay().AsDuration()
			}
		}
		if !strings.Contains(st.Message(), fmt.Sprint(linkd.MaxSessionsPerLinkToken)) {
			t.Errorf("message %q does not name the limit", st.Message())
		}
		if reason != linkd.ReasonSessionsPerLinkToken {
			t.Errorf("ErrorInfo reason = %q, want %s (details %v)", reason, linkd.ReasonSessionsPerLinkToken, st.Details())
		}
		if retry <= 3*time.Hour || retry > 4*time.Hour {
			t.Errorf("RetryInfo = %v, want the time until the token expires (about 4 hours)", retry)
		}
		if err := submit(tok, 0, "HANDOFF"); err != nil {
			t.Errorf("SubmitRedirect(existing session): %v", err)
		}
		other, _ := mustLink(t, c, "user-1")
		if err := submit(other, linkd.MaxSessionsPerLinkToken, "OPEN"); err != nil {
			t.Errorf("SubmitRedirect(another token): %v", err)
		}
	})
}
