package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

// TestLinkd_WebhookReplayAfterRestart: a genuine delivery is applied, linkd
// restarts on the same data directory (its memory of deliveries gone), and
// the same delivery replayed within its five minutes is acknowledged (200,
// so Plaid stops retrying) and changes nothing. The emulator runs apart,
// as Plaid does, so that its signing key outlives the restart.
func TestLinkd_WebhookReplayAfterRestart(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "restart-client", Secret: "restart-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	env := []string{"PLAID_CLIENT_ID=restart-client", "PLAID_SECRET=restart-secret", "PLAID_ENV=sandbox", "PLAID_BASE_URL=" + emu.URL()}
	dir := t.TempDir()
	ctx := context.Background()
	catcher := newWebhookCatcher(t)

	ts := mustStartServerIn(t, dir, nil, env...)
	c := ts.GRPC(t)
	tok, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", Webhook: catcher.srv.URL})
	must(t, err)
	publicToken, err := emu.CreatePublicToken(tok.GetLinkToken().GetLinkToken(), "ins_109508", nil)
	must(t, err)
	resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-1"), LinkToken: tok.GetLinkToken().GetLinkToken()})
	must(t, err)
	id := resp.GetItem().GetItemId()
	_, err = c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: id})
	must(t, err)
	genuine := catcher.take(t)
	if code := postWebhook(t, ts, genuine.jwt, genuine.body); code != http.StatusOK {
		t.Fatalf("genuine delivery: HTTP %d, want 200", code)
	}
	mustStatus(t, c, id, linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED)
	// The user repairs the Item before the replay comes (at Plaid too:
	// the restarted linkd's reconcile asks /item/get).
	token, err := ts.db.AccessToken(ctx, id)
	must(t, err)
	must(t, emu.SetItemState(token.Reveal(), plaidemu.StateLoginRepaired, ""))
	_, err = ts.db.UpdateItem(ctx, id, linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_GOOD, "", time.Now()))
	must(t, err)
	ts.conn.Close()
	ts.conn = nil
	must(t, ts.Close())

	ts2 := mustStartServerIn(t, dir, nil, env...)
	if code := postWebhook(t, ts2, genuine.jwt, genuine.body); code != http.StatusOK {
		t.Errorf("replay after restart: HTTP %d, want 200", code)
	}
	mustStatus(t, ts2.GRPC(t), id, linkdv1.ItemStatus_ITEM_STATUS_GOOD)
	if hooks, _, err := ts2.db.ListWebhooks(ctx, "", 1000); err != nil || len(hooks) != 1 {
		t.Errorf("recorded webhooks after the replay = %d, %v; want 1", len(hooks), err)
	}
}
