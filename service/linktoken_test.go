package service_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestService_LinkTokenStatus_SettledFromStore: once linkd has filed the
// session that linked an Item, GetLinkToken's answer cannot change: the
// call that learns so asks Plaid's /link/token/get, the next answers the
// same from linkd's records without asking. A token whose session exited
// before it expired may still be used again, so every call asks.
func TestService_LinkTokenStatus_SettledFromStore(t *testing.T) {
	e := mustEnv(t)
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	issue := func(user string) (string, func() *linkdv1.GetLinkTokenResponse) {
		t.Helper()
		tok, err := e.svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
		if err != nil {
			t.Fatal(err)
		}
		return tok.GetLinkToken(), func() *linkdv1.GetLinkTokenResponse {
			t.Helper()
			stored, err := e.svc.LinkToken(ctx, tok.GetLinkToken()) // as the server reads it per call
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.svc.LinkTokenStatus(ctx, stored)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
	}

	linked, status := issue("user-1")
	sessionID, publicToken, err := e.emu.CompleteLinkSession(linked, "ins_109508", "")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.svc.LinkToken(ctx, linked)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.SubmitRedirect(ctx, stored, &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: publicToken, LinkSessionId: sessionID, InstitutionId: "ins_109508"}}})
	if err != nil {
		t.Fatal(err)
	}
	calls := e.emu.Calls("/link/token/get")
	first := status()
	second := status()
	if got := e.emu.Calls("/link/token/get") - calls; got != 1 {
		t.Errorf("/link/token/get calls for two GetLinkToken of a filed, linked session = %d, want 1", got)
	}
	if first.GetState() != linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED || len(first.GetLinkSessions()) != 1 ||
		first.GetLinkSessions()[0].GetItemId() != out.Item.GetItemId() {
		t.Fatalf("first answer = %v; want COMPLETED with the session and its Item", first)
	}
	if !proto.Equal(first, second) {
		t.Errorf("answer from the store = %v\nwant Plaid's = %v", second, first)
	}

	exited, status := issue("user-2")
	if _, _, err := e.emu.CompleteLinkSession(exited, "ins_109508", "requires_credentials"); err != nil {
		t.Fatal(err)
	}
	calls = e.emu.Calls("/link/token/get")
	status()
	status()
	if got := e.emu.Calls("/link/token/get") - calls; got != 2 {
		t.Errorf("/link/token/get calls for two GetLinkToken of an exited, unexpired token = %d, want 2", got)
	}
}
