package main

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/browsertest"
)

// TestBrowser_HostedLink runs Hosted Link end to end in Chromium, as an app
// opening hosted_link_url in a browser tab would: the user clicks through
// linkd's Link page, which fires no plaidlink:// redirect (a tab has no
// webview delegate) but reports the session as Plaid's hosted page does,
// and lands on completion_redirect_uri. The LINK webhooks have created the
// Item by then, and GetLinkToken says the token is completed.
func TestBrowser_HostedLink(t *testing.T) {
	env := mustBrowserEnv(t)
	ctx := context.Background()
	tok := env.hostedLinkToken(t, "hosted-browser")
	if want := "http://" + env.ts.HTTPAddr() + "/link/v2/stable/link.html?token="; !strings.HasPrefix(tok.GetHostedLinkUrl(), want) || tok.GetWebviewUrl() != "" {
		t.Fatalf("hosted_link_url = %q, webview_url = %q; want linkd's own page %s... only", tok.GetHostedLinkUrl(), tok.GetWebviewUrl(), want)
	}

	tab := env.browser.NewTab(t)
	tab.Run("open hosted_link_url", chromedp.Navigate(tok.GetHostedLinkUrl()))
	tab.Screen("#view-consent", "hosted-consent")
	tab.Click("#consent-continue")
	tab.Type("#search", "first")
	tab.Click(`[data-institution-id="ins_109508"]`)
	tab.Type("#username", "user_good")
	tab.Type("#password", "pass_good")
	tab.Click("#credential-submit")
	tab.Click("#account-submit")
	tab.Click("#connected-continue")
	env.wantCompletionRedirect(t, tab, "hosted-back-in-app")
	if urls := tab.URLs(); len(urls) != 0 {
		t.Errorf("Hosted Link fired plaidlink:// redirects: %v", urls)
	}

	env.ts.WaitRefreshed(t)
	items, err := env.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "hosted-browser"})
	if err != nil || len(items.GetItems()) != 1 {
		t.Fatalf("items = %v, %v; want the one Item the session linked", items, err)
	}
	got := mustLinkTokenState(t, env.c, tok.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED)
	sess := got.GetLinkSessions()
	if len(sess) != 1 || sess[0].GetItemId() != items.GetItems()[0].GetItemId() {
		t.Fatalf("link_sessions = %v, want the session with the Item", sess)
	}
	var names []string
	for _, e := range sess[0].GetEvents() {
		if e.GetEventId() == "" {
			t.Errorf("event %s has no event_id", e.GetEventName())
		}
		names = append(names, e.GetEventName())
	}
	if len(names) < 3 || names[0] != "OPEN" || names[len(names)-1] != "HANDOFF" {
		t.Errorf("events = %v, want the page's OPEN ... HANDOFF", names)
	}
	if n := env.ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
}

// hostedLinkToken creates a Hosted Link token for user whose sessions
// report to linkd's webhook and end at the app's /link-done.
func (env *browserEnv) hostedLinkToken(t *testing.T, user string) *linkdv1.LinkToken {
	t.Helper()
	resp, err := env.c.CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{
		ClientUserId: user, Webhook: env.ts.BaseURL + "/v1/webhooks/plaid",
		HostedLink: &linkdv1.HostedLink{CompletionRedirectUri: env.app.URL + "/link-done", IsMobileApp: true},
	})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	return resp.GetLinkToken()
}

// wantCompletionRedirect waits until a Hosted Link tab is back in the app
// (shot) and checks it landed on hostedLinkToken's completion_redirect_uri.
func (env *browserEnv) wantCompletionRedirect(t *testing.T, tab *browsertest.Tab, shot string) {
	t.Helper()
	tab.Screen("#back-in-app", shot)
	var landed string
	tab.Run("read the landing URL", chromedp.Location(&landed))
	if landed != env.app.URL+"/link-done" {
		t.Errorf("landed on %q, want completion_redirect_uri", landed)
	}
}
