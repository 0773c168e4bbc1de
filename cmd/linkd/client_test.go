package main

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd/client"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/jwt/jwttest"
)

// TestClient_Linkd runs the Go client package against a real linkd: a
// service with an API key links an Item, then reads each kind of error
// detail with the client's helpers; an end user calls with its JWT.
func TestClient_Linkd(t *testing.T) {
	k := jwttest.MustECKey(t, "ec-client")
	ts := MustStartServer(t, append(userEnv(t, k), "LINKD_API_KEYS=svc-key")...)
	ctx := context.Background()

	svc, err := client.Dial(ts.GRPCAddr(), client.Options{APIKey: "svc-key", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()

	tok, err := svc.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "alice"})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	link := func(session string, token string) (*linkdv1.SubmitRedirectResponse, error) {
		publicToken, err := ts.emulator.CreatePublicToken(token, "ins_109508", nil)
		if err != nil {
			t.Fatalf("emulator Link session: %v", err)
		}
		return svc.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: token, Url: connectedURL(publicToken, session)})
	}
	first, err := link("sess-client-1", tok.GetLinkToken().GetLinkToken())
	if err != nil {
		t.Fatalf("SubmitRedirect: %v", err)
	}

	t.Run("IsDuplicateItem", func(t *testing.T) {
		again, err := svc.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = link("sess-client-2", again.GetLinkToken().GetLinkToken())
		if id, ok := client.IsDuplicateItem(err); !ok || id != first.GetItem().GetItemId() {
			t.Errorf("IsDuplicateItem(%v) = %q, %v; want %q", err, id, ok, first.GetItem().GetItemId())
		}
	})
	t.Run("FieldViolations", func(t *testing.T) {
		_, err := svc.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: "https://example.com/not-a-redirect"})
		fv := client.FieldViolations(err)
		if status.Code(err) != codes.InvalidArgument || len(fv) == 0 || fv[0].GetField() != "url" {
			t.Errorf("ParseRedirect(bad url): err %v, field violations %v; want one naming url", err, fv)
		}
	})
	t.Run("PlaidError", func(t *testing.T) {
		_, err := svc.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{
			PublicToken: "public-sandbox-00000000-0000-0000-0000-000000000000", ClientUserId: "alice"})
		p, ok := client.PlaidError(err)
		if !ok || p.ErrorCode != "INVALID_PUBLIC_TOKEN" || p.RequestID == "" {
			t.Errorf("PlaidError(%v) = %+v, %v; want INVALID_PUBLIC_TOKEN with a request_id", err, p, ok)
		}
	})
	t.Run("UserToken", func(t *testing.T) {
		user, err := client.Dial(ts.GRPCAddr(), client.Options{Insecure: true,
			UserToken: func(context.Context) (string, error) { return userToken(t, k, "alice"), nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer user.Close()
		items, err := user.ListItems(ctx, &linkdv1.ListItemsRequest{})
		if err != nil || len(items.GetItems()) != 1 {
			t.Fatalf("ListItems as alice: %v, %v", items, err)
		}
		_, err = user.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "bob"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("ListItems of bob as alice: %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("Unauthenticated", func(t *testing.T) {
		bad, err := client.Dial(ts.GRPCAddr(), client.Options{APIKey: "wrong-key", Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		if _, err := bad.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: first.GetItem().GetItemId()}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("GetItem with a wrong key: %v, want UNAUTHENTICATED", err)
		}
	})
}
