package client_test

import (
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/client"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestClient_NoGateway keeps the client light for apps: nothing it imports
// may import grpc-gateway (only linkd's server/ does).
func TestClient_NoGateway(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/linkd/linkd/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "google.golang.org/grpc\n") {
		t.Fatalf("go list -deps output does not look like a dependency list:\n%s", out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "grpc-gateway") {
			t.Errorf("client depends on %s", dep)
		}
	}
}

func TestDial_Options(t *testing.T) {
	token := func(context.Context) (string, error) { return "jwt", nil }
	for _, tt := range []struct {
		name string
		opts client.Options
	}{
		{"NoCredential", client.Options{Insecure: true}},
		{"BothCredentials", client.Options{APIKey: "k", UserToken: token, Insecure: true}},
		{"NeitherTLSNorInsecure", client.Options{APIKey: "k"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := client.Dial("127.0.0.1:1", tt.opts); err == nil {
				c.Close()
				t.Error("Dial succeeded")
			}
		})
	}
}

// TestServiceConfig_EveryMethodDecided makes a new RPC choose: retried on
// UNAVAILABLE (client.IdempotentMethods) or not (notRetried here).
func TestServiceConfig_EveryMethodDecided(t *testing.T) {
	notRetried := []string{"CreateLinkToken", "RemoveItem", "CreateSandboxPublicToken", "ResetSandboxItemLogin", "FireSandboxWebhook", "SetSandboxVerificationStatus", "SetEmulatorItemState", "CompleteSandboxLinkSession"}
	for _, m := range linkdv1.LinkService_ServiceDesc.Methods {
		retried := slices.Contains(client.IdempotentMethods, m.MethodName)
		if retried == slices.Contains(notRetried, m.MethodName) {
			t.Errorf("%s: put it in client.IdempotentMethods or in notRetried here", m.MethodName)
		}
	}
}

// fakeLinkd counts calls and fails them with UNAVAILABLE as told. linkd
// itself cannot be made to answer UNAVAILABLE on cue; TestClient_Linkd in
// cmd/linkd runs the client against the real one.
type fakeLinkd struct {
	linkdv1.UnimplementedLinkServiceServer
	mu          sync.Mutex
	calls       map[string]int
	failFirst   int
	authHeaders []string
}

func (f *fakeLinkd) count(ctx context.Context, method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	f.authHeaders = append(f.authHeaders, md.Get("authorization")...)
	f.calls[method]++
	if f.calls[method] <= f.failFirst {
		return status.Error(codes.Unavailable, "try again")
	}
	return nil
}

func (f *fakeLinkd) GetItem(ctx context.Context, _ *linkdv1.GetItemRequest) (*linkdv1.GetItemResponse, error) {
	if err := f.count(ctx, "GetItem"); err != nil {
		return nil, err
	}
	return &linkdv1.GetItemResponse{Item: &linkdv1.Item{ItemId: "item-1"}}, nil
}

func (f *fakeLinkd) CreateLinkToken(ctx context.Context, _ *linkdv1.CreateLinkTokenRequest) (*linkdv1.CreateLinkTokenResponse, error) {
	if err := f.count(ctx, "CreateLinkToken"); err != nil {
		return nil, err
	}
	return &linkdv1.CreateLinkTokenResponse{}, nil
}

func startFake(t *testing.T, failFirst int) (*fakeLinkd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLinkd{calls: map[string]int{}, failFirst: failFirst}
	srv := grpc.NewServer()
	linkdv1.RegisterLinkServiceServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return f, ln.Addr().String()
}

func TestClient_Retry(t *testing.T) {
	f, addr := startFake(t, 2)
	c, err := client.Dial(addr, client.Options{APIKey: "svc-key", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("IdempotentRetried", func(t *testing.T) {
		resp, err := c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: "item-1"})
		if err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		if resp.GetItem().GetItemId() != "item-1" || f.calls["GetItem"] != 3 {
			t.Errorf("GetItem answered %v after %d attempts, want item-1 after 3", resp, f.calls["GetItem"])
		}
	})
	t.Run("CreateNotRetried", func(t *testing.T) {
		_, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "u"})
		if status.Code(err) != codes.Unavailable || f.calls["CreateLinkToken"] != 1 {
			t.Errorf("CreateLinkToken: err %v after %d attempts, want UNAVAILABLE after 1", err, f.calls["CreateLinkToken"])
		}
	})
	t.Run("APIKeySent", func(t *testing.T) {
		for _, h := range f.authHeaders {
			if h != "Bearer svc-key" {
				t.Errorf("authorization = %q", h)
			}
		}
	})
}

func TestClient_UserToken(t *testing.T) {
	f, addr := startFake(t, 0)
	n := 0
	c, err := client.Dial(addr, client.Options{Insecure: true, UserToken: func(context.Context) (string, error) {
		n++
		return "jwt-" + string(rune('0'+n)), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if _, err := c.GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: "item-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"Bearer jwt-1", "Bearer jwt-2"}; !slices.Equal(f.authHeaders, want) {
		t.Errorf("authorization headers = %q, want %q (the token asked for on every call)", f.authHeaders, want)
	}
}

func TestErrorHelpers(t *testing.T) {
	with := func(code codes.Code, details ...*errdetails.ErrorInfo) error {
		st := status.New(code, "x")
		for _, d := range details {
			st, _ = st.WithDetails(d)
		}
		return st.Err()
	}
	dup := with(codes.AlreadyExists, &errdetails.ErrorInfo{Domain: linkd.ErrorDomain, Reason: linkd.ReasonDuplicateItem, Metadata: map[string]string{"item_id": "item-9"}})
	if id, ok := client.IsDuplicateItem(dup); !ok || id != "item-9" {
		t.Errorf("IsDuplicateItem = %q, %v", id, ok)
	}
	hidden := with(codes.AlreadyExists, &errdetails.ErrorInfo{Domain: linkd.ErrorDomain, Reason: linkd.ReasonDuplicateItem})
	if id, ok := client.IsDuplicateItem(hidden); !ok || id != "" {
		t.Errorf("IsDuplicateItem(another user's) = %q, %v", id, ok)
	}
	// A Plaid error_code that happens to read DUPLICATE_ITEM is not linkd's.
	plaidDup := with(codes.AlreadyExists, &errdetails.ErrorInfo{Domain: linkd.PlaidErrorDomain, Reason: "DUPLICATE_ITEM"})
	if _, ok := client.IsDuplicateItem(plaidDup); ok {
		t.Error("IsDuplicateItem took a plaid.com reason")
	}
	plaid := with(codes.FailedPrecondition, &errdetails.ErrorInfo{Domain: linkd.PlaidErrorDomain, Reason: "ITEM_LOGIN_REQUIRED",
		Metadata: map[string]string{"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED", "request_id": "req-1"}})
	if p, ok := client.PlaidError(plaid); !ok || p.ErrorType != "ITEM_ERROR" || p.ErrorCode != "ITEM_LOGIN_REQUIRED" || p.RequestID != "req-1" {
		t.Errorf("PlaidError = %+v, %v", p, ok)
	}
	if _, ok := client.PlaidError(dup); ok {
		t.Error("PlaidError took a linkd reason")
	}
	st, _ := status.New(codes.InvalidArgument, "bad").WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "url", Description: "bad"}}})
	if fv := client.FieldViolations(st.Err()); len(fv) != 1 || fv[0].GetField() != "url" {
		t.Errorf("FieldViolations = %v", fv)
	}
	if client.FieldViolations(context.Canceled) != nil {
		t.Error("FieldViolations of a non-status error")
	}
}
