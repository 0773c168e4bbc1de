package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
)

func TestToStatus(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	plaidErr := &linkd.Error{Code: linkd.ERATELIMIT, Message: "slow down", Plaid: &linkd.PlaidError{
		ErrorType: "RATE_LIMIT_EXCEEDED", ErrorCode: "RATE_LIMIT", RequestID: "req-1", DisplayMessage: "Try later"}}
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
		field   string
		reason  string
	}{
		{"Invalid", linkd.InvalidField("url", "url is required"), codes.InvalidArgument, "url is required", "url", ""},
		{"NotFound", linkd.Errorf(linkd.ENOTFOUND, "item not found"), codes.NotFound, "item not found", "", ""},
		{"Conflict", linkd.Errorf(linkd.ECONFLICT, "exists"), codes.AlreadyExists, "exists", "", ""},
		{"Unauthorized", linkd.Errorf(linkd.EUNAUTHORIZED, "no"), codes.Unauthenticated, "no", "", ""},
		{"Forbidden", linkd.Errorf(linkd.EFORBIDDEN, "no"), codes.PermissionDenied, "no", "", ""},
		{"Precondition", linkd.Errorf(linkd.EPRECONDITION, "production"), codes.FailedPrecondition, "production", "", ""},
		{"Unavailable", linkd.Errorf(linkd.EUNAVAILABLE, "plaid down"), codes.Unavailable, "plaid down", "", ""},
		{"WrappedPlaid", fmt.Errorf("exchange: %w", plaidErr), codes.ResourceExhausted, "slow down", "", "RATE_LIMIT"},
		{"InternalHidesDetail", linkd.Errorf(linkd.EINTERNAL, "bolt: page 7 corrupt"), codes.Internal, "internal error", "", ""},
		{"PlainErrorIsInternal", errors.New("secret-ish detail"), codes.Internal, "internal error", "", ""},
		{"StatusPassesThrough", status.Error(codes.Unauthenticated, "key"), codes.Unauthenticated, "key", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(toStatus(context.Background(), log, "/m", tt.err))
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Fatalf("status = %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			var field, reason string
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.BadRequest:
					field = d.GetFieldViolations()[0].GetField()
				case *errdetails.ErrorInfo:
					reason = d.GetReason()
					if d.GetMetadata()["request_id"] != "req-1" || d.GetMetadata()["display_message"] != "Try later" {
						t.Errorf("ErrorInfo metadata = %v", d.GetMetadata())
					}
				}
			}
			if field != tt.field || reason != tt.reason {
				t.Errorf("field %q reason %q, want %q %q", field, reason, tt.field, tt.reason)
			}
		})
	}
	if !strings.Contains(logs.String(), "bolt: page 7 corrupt") {
		t.Error("an internal error's detail was not logged")
	}
}

func TestAuthenticator_APIKeys(t *testing.T) {
	a := newAuthenticator([]string{"k1", "k2"}, nil, slog.Default())
	for _, tt := range []struct {
		name, method, header string
		ok                   bool
	}{
		{"FirstKey", "/linkd.v1.LinkService/GetItem", "Bearer k1", true},
		{"SecondKey", "/linkd.v1.LinkService/GetItem", "bearer k2", true},
		{"WrongKey", "/linkd.v1.LinkService/GetItem", "Bearer k3", false},
		{"NoScheme", "/linkd.v1.LinkService/GetItem", "k1", false},
		{"Basic", "/linkd.v1.LinkService/GetItem", "Basic k1", false},
		{"Missing", "/linkd.v1.LinkService/GetItem", "", false},
		{"HealthOpen", "/grpc.health.v1.Health/Check", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.header != "" {
				ctx = metadataContext(tt.header)
			}
			authed, err := a.authenticate(ctx, tt.method)
			if (err == nil) != tt.ok {
				t.Fatalf("authenticate = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && strings.HasPrefix(tt.method, "/linkd.") {
				if c, _ := linkd.CallerFrom(authed); !c.Service {
					t.Errorf("caller = %+v, want a service", c)
				}
			}
			if err != nil && status.Code(err) != codes.Unauthenticated {
				t.Errorf("code = %v, want Unauthenticated", status.Code(err))
			}
		})
	}
}
