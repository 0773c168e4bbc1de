package main

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/browsertest"
)

// popupBank is the emulator's OAuth institution whose page Link opens with
// window.open, as Plaid's Link opens Chase's.
const popupBank = "ins_56"

// TestBrowser_OAuthPopup runs Link at an OAuth bank that opens in a new
// window. The test plays the app: its webview handler is what Plaid
// requires of webview apps for Chase (WKUIDelegate createWebViewWith,
// WebChromeClient onCreateWindow), here the browser's own new target with
// the Link tab as opener, which the test drives as the secure browser the
// app would show it in. The same flow in a browser that refuses popups
// never reaches the bank and ends with the user closing Link.
func TestBrowser_OAuthPopup(t *testing.T) {
	env := mustBrowserEnv(t)
	ctx := context.Background()

	// toBank opens Link at the popup bank and asks for its page.
	toBank := func(t *testing.T, tab *browsertest.Tab, linkURL string) {
		t.Helper()
		tab.Run("open Link", chromedp.Navigate(linkURL))
		tab.Click("#consent-continue")
		tab.Type("#search", "chase")
		tab.Click(`[data-institution-id="` + popupBank + `"]`)
		tab.Screen("#view-oauth", "oauth-popup-bank")
		tab.Click("#oauth-continue")
		tab.Screen("#view-oauth-popup", "7c-oauth-popup-waiting")
	}

	t.Run("Webview", func(t *testing.T) {
		exchanges := env.ts.emulator.Calls(exchangePath)
		redirectURI := env.app.URL + "/plaid/oauth-return"
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "popup-1", RedirectUri: redirectURI})
		tab := env.browser.NewTab(t)
		toBank(t, tab, tok.GetWebviewUrl())

		// The app's handler takes the window Link opened and shows it;
		// opened at redirect_uri, the app relaunches Link in its webview.
		relaunch := env.allowAtBank(t, tab.Popup(), "7d-oauth-popup-bank-page", tok.GetLinkToken(), redirectURI)
		connectAfterOAuth(t, tab, relaunch)

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("connected"))
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/SELECT_INSTITUTION",
			"SEARCH_INSTITUTION", "SELECT_INSTITUTION", "TRANSITION_VIEW/OAUTH", "OPEN_OAUTH",
			"TRANSITION_VIEW/SELECT_ACCOUNT", "TRANSITION_VIEW/CONNECTED", "HANDOFF"})
		if it := last.GetItem(); it.GetItemId() == "" || it.GetInstitutionId() != popupBank {
			t.Errorf("item = %v, want one at %s", it, popupBank)
		}
		if n := env.ts.emulator.Calls(exchangePath) - exchanges; n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1", n)
		}
	})

	t.Run("WebviewRefusesPopups", func(t *testing.T) {
		// An app whose webview does not handle window.open: the bank's
		// window is never shown, so the user can only close Link.
		exchanges := env.ts.emulator.Calls(exchangePath)
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "popup-2", RedirectUri: env.app.URL + "/plaid/oauth-return"})
		tab := env.browser.NewTab(t)
		tab.RefusePopups()
		toBank(t, tab, tok.GetWebviewUrl())
		tab.Click("#oauth-reopen") // trying again changes nothing
		tab.Screen("#view-oauth-popup", "oauth-popup-refused")
		tab.Click("#close")
		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("exit"))
		if got := f.events[len(f.events)-1]; got != "EXIT" {
			t.Errorf("last event %s, want EXIT", got)
		}
		if exit := last.GetExit(); exit.GetStatus() != "requires_oauth" || exit.GetInstitutionId() != popupBank {
			t.Errorf("exit = %v, want requires_oauth at %s", exit, popupBank)
		}
		items, err := env.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "popup-2"})
		if err != nil || len(items.GetItems()) != 0 {
			t.Errorf("ListItems = %v, %v; want none", items, err)
		}
		if n := env.ts.emulator.Calls(exchangePath) - exchanges; n != 0 {
			t.Errorf("Plaid exchanges = %d, want 0", n)
		}
		// The page did ask for the bank's window, twice; the app said no.
		if n := tab.Refused(); n != 2 {
			t.Errorf("windows refused = %d, want 2 (Continue, then Open again)", n)
		}
	})

	t.Run("HostedLink", func(t *testing.T) {
		// A Hosted Link tab needs no redirect_uri: the bank returns to the
		// page's own return page in the popup, which closes, and Link
		// carries on in the tab to completion_redirect_uri.
		exchanges := env.ts.emulator.Calls(exchangePath)
		tok := env.hostedLinkToken(t, "popup-hosted")
		tab := env.browser.NewTab(t)
		toBank(t, tab, tok.GetHostedLinkUrl())
		bank := tab.Popup()
		bank.Screen("#bank-allow", "hosted-popup-bank-page")
		bank.Click("#bank-allow")
		tab.WaitPopupsClosed() // the return page closes the bank's window
		tab.Screen("#view-select-account", "hosted-popup-select-account")
		tab.Click("#account-submit")
		tab.Click("#connected-continue")
		env.wantCompletionRedirect(t, tab, "hosted-popup-back-in-app")

		env.ts.WaitRefreshed(t)
		items, err := env.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "popup-hosted"})
		if err != nil || len(items.GetItems()) != 1 || items.GetItems()[0].GetInstitutionId() != popupBank {
			t.Fatalf("items = %v, %v; want the one Item at %s", items, err, popupBank)
		}
		mustLinkTokenState(t, env.c, tok.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED)
		if n := env.ts.emulator.Calls(exchangePath) - exchanges; n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1", n)
		}
	})
}
