package main

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
)

// TestLinkd_DeleteUserData erases a user whose erasure was interrupted:
// one Item already removed at Plaid (a crash after Plaid answered), then a
// call that fails on Plaid and deletes nothing, then the call that
// completes, then one that finds nothing left. Another user is untouched.
func TestLinkd_DeleteUserData(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		a := mustConnectWithWebhook(t, ts, c, "user-1", "sess-a", ts.BaseURL+server.WebhookPath)
		_, err := c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: a.GetItemId(), WebhookCode: "DEFAULT_UPDATE", WebhookType: "TRANSACTIONS"})
		must(t, err)
		tok, pt := mustLink(t, c, "user-1")
		_, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURLWith(pt, "sess-b", "Savings", "1111"), LinkToken: tok.GetLinkToken()})
		must(t, err)
		other := mustConnectWithWebhook(t, ts, c, "user-2", "sess-other", ts.BaseURL+server.WebhookPath)
		_, err = c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: other.GetItemId(), WebhookCode: "DEFAULT_UPDATE", WebhookType: "TRANSACTIONS"})
		must(t, err)

		// An earlier erasure got as far as Plaid removing Item a.
		token, err := ts.db.AccessToken(ctx, a.GetItemId())
		must(t, err)
		_, err = ts.plaid.RemoveItem(ctx, token)
		must(t, err)

		// Plaid fails: nothing is deleted here.
		ts.emulator.FailNext(removePath, plaidemu.Error{Type: plaidemu.TypeInstitution, Code: "INSTITUTION_DOWN", Message: "down (injected)"})
		_, err = c.DeleteUserData(ctx, &linkdv1.DeleteUserDataRequest{ClientUserId: "user-1"})
		wantCode(t, err, codes.Unavailable)
		if items := mustItemsIn(t, c, "user-1"); len(items) != 2 {
			t.Fatalf("Items after a failed erasure = %v, want both", items)
		}

		got, err := c.DeleteUserData(ctx, &linkdv1.DeleteUserDataRequest{ClientUserId: "user-1"})
		must(t, err)
		want := &linkdv1.DeleteUserDataResponse{ClientUserId: "user-1", ItemsRemovedAtPlaid: 1, ItemsAlreadyGoneAtPlaid: 1,
			ItemsDeleted: 2, LinkSessionsDeleted: 2, LinkTokensDeleted: 2, WebhooksDeleted: 1}
		if got.String() != want.String() {
			t.Errorf("DeleteUserData = %v\nwant %v", got, want)
		}
		if items := mustItemsIn(t, c, "user-1"); len(items) != 0 {
			t.Errorf("Items after erasure = %v", items)
		}
		for _, id := range []string{"sess-a", "sess-b"} {
			_, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: id})
			wantCode(t, err, codes.NotFound)
		}
		_, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(pt, "sess-b"), LinkToken: tok.GetLinkToken()})
		wantCode(t, err, codes.InvalidArgument) // the link token is gone
		if _, err := ts.db.AccessToken(ctx, a.GetItemId()); err == nil {
			t.Error("Item a's sealed access token is still stored")
		}
		hooks, _, err := ts.db.ListWebhooks(ctx, "", 100)
		must(t, err)
		for _, h := range hooks {
			if h.GetItemId() != other.GetItemId() {
				t.Errorf("webhook of %s kept after erasure", h.GetItemId())
			}
		}

		// Idempotent: nothing left.
		again, err := c.DeleteUserData(ctx, &linkdv1.DeleteUserDataRequest{ClientUserId: "user-1"})
		if err != nil || again.String() != (&linkdv1.DeleteUserDataResponse{ClientUserId: "user-1"}).String() {
			t.Errorf("second DeleteUserData = %v, %v; want zero counts", again, err)
		}
		// The other user keeps everything.
		if items := mustItemsIn(t, c, "user-2"); len(items) != 1 {
			t.Errorf("user-2 Items = %v", items)
		}
		if _, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-other"}); err != nil {
			t.Errorf("user-2 session: %v", err)
		}
	})
}
