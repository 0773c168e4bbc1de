package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/browsertest"
	"github.com/linkd/linkd/server"
)

// These tests drive linkd's emulated Link page in headless Chromium, as an
// app's webview would: open webview_url, click through, and take every
// plaidlink:// navigation the page makes from the browser itself
// (Page.frameRequestedNavigation, the DevTools twin of WKWebView's
// decidePolicyFor navigationAction), then submit each to SubmitRedirect.
// The browser plumbing, and where screenshots go, is in
// internal/browsertest.

// flow is what a test checks of the redirects of one Link session.
type flow struct {
	// events are the event_name[/view_name] of each event redirect, in order.
	events []string
	// end is the final redirect.
	end string
	// session is the link_session_id of every redirect.
	session string
}

// checkRedirects checks each redirect's shape (browsertest.CheckRedirects),
// submits each to SubmitRedirect in order as the app would, and checks the
// session linkd recorded.
func checkRedirects(t *testing.T, c linkdv1.LinkServiceClient, linkToken string, urls []string) (flow, *linkdv1.SubmitRedirectResponse) {
	t.Helper()
	var f flow
	f.events, f.session = browsertest.CheckRedirects(t, urls)
	f.end = urls[len(urls)-1]
	var last *linkdv1.SubmitRedirectResponse
	for _, raw := range urls {
		var err error
		last, err = c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: raw, LinkToken: linkToken})
		if err != nil {
			t.Fatalf("SubmitRedirect(%s): %v", raw, err)
		}
	}
	sess, err := c.GetLinkSession(context.Background(), &linkdv1.GetLinkSessionRequest{LinkSessionId: f.session})
	if err != nil {
		t.Fatalf("GetLinkSession: %v", err)
	}
	var recorded []string
	for _, e := range sess.GetSession().GetEvents() {
		name := e.GetEventName()
		if e.GetViewName() != "" {
			name += "/" + e.GetViewName()
		}
		recorded = append(recorded, name)
	}
	if !slices.Equal(recorded, f.events) {
		t.Errorf("recorded events:\n  %v\nwant the order they were fired:\n  %v", recorded, f.events)
	}
	return f, last
}

func wantEvents(t *testing.T, got, want []string) {
	t.Helper()
	browsertest.WantEvents(t, got, want)
}

// browserEnv is a linkd, a client and a browser shared by the subtests.
type browserEnv struct {
	ts      *testServer
	c       linkdv1.LinkServiceClient
	browser *browsertest.Browser
	// app is the app's own site: the OAuth redirect_uri lands there.
	app *httptest.Server
}

func mustBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	if browsertest.FindChromium() == "" {
		t.Skip("no Chromium found (install Debian's chromium package, or set LINKD_CHROMIUM): skipping the browser tests")
	}
	ts := MustStartServer(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><meta name="viewport" content="width=device-width"><title>App</title><h1 id="back-in-app">Back in the app</h1>`)
	}))
	t.Cleanup(app.Close)
	return &browserEnv{ts: ts, c: ts.REST(), browser: browsertest.MustStart(t, "http://"+ts.HTTPAddr()), app: app}
}

func (env *browserEnv) linkToken(t *testing.T, req *linkdv1.CreateLinkTokenRequest) *linkdv1.LinkToken {
	t.Helper()
	resp, err := env.c.CreateLinkToken(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	want := "http://" + env.ts.HTTPAddr() + "/link/v2/stable/link.html?isWebview=true&token="
	if !strings.HasPrefix(resp.GetLinkToken().GetWebviewUrl(), want) {
		t.Fatalf("webview_url = %q, want linkd's own page %s...", resp.GetLinkToken().GetWebviewUrl(), want)
	}
	return resp.GetLinkToken()
}

// allowAtBank grants access on the emulated bank's page shown in bank (as
// shot), checks that the bank returned to redirectURI with an
// oauth_state_id, and returns the webview_url that relaunches Link, which
// the app, opened at redirect_uri, gets from ResumeOAuth.
func (env *browserEnv) allowAtBank(t *testing.T, bank *browsertest.Tab, shot, linkToken, redirectURI string) string {
	t.Helper()
	bank.Screen("#bank-allow", shot)
	bank.Click("#bank-allow")
	bank.Screen("#back-in-app", "back-in-app")
	var landed string
	bank.Run("read location", chromedp.Location(&landed))
	if !strings.HasPrefix(landed, redirectURI+"?oauth_state_id=") {
		t.Fatalf("the bank returned to %q, want %s?oauth_state_id=...", landed, redirectURI)
	}
	resumed, err := env.c.ResumeOAuth(context.Background(), &linkdv1.ResumeOAuthRequest{LinkToken: linkToken, ReceivedRedirectUri: landed})
	if err != nil {
		t.Fatalf("ResumeOAuth(%s): %v", landed, err)
	}
	return resumed.GetWebviewUrl()
}

// connectAfterOAuth relaunches Link in tab at relaunch, as the app does
// after OAuth, and connects the preselected account.
func connectAfterOAuth(t *testing.T, tab *browsertest.Tab, relaunch string) {
	t.Helper()
	tab.Run("relaunch Link", chromedp.Navigate(relaunch))
	tab.Screen("#view-select-account", "select-account-after-oauth")
	tab.Click("#account-submit")
	tab.Click("#connected-continue")
}

func TestBrowser_Link(t *testing.T) {
	start := time.Now()
	env := mustBrowserEnv(t)
	ctx := context.Background()

	t.Run("Connect", func(t *testing.T) {
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-1"})
		tab := env.browser.NewTab(t)
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.Screen("#view-consent", "1-consent")
		tab.Click("#consent-continue")
		tab.Screen("#view-select-institution", "2-select-institution")
		tab.Type("#search", "first")
		tab.Click(`[data-institution-id="ins_109508"]`)
		tab.Screen("#view-credential", "3-credentials")
		tab.Type("#username", "user_good")
		tab.Type("#password", "pass_good")
		tab.Click("#credential-submit")
		tab.Screen("#view-select-account", "5-select-account")
		tab.Click("#accounts label:nth-child(2)") // Plaid Saving, beside the preselected Checking
		tab.Click("#account-submit")
		tab.Screen("#view-connected", "6-connected")
		tab.Click("#connected-continue")

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("connected"))
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/SELECT_INSTITUTION",
			"SEARCH_INSTITUTION", "SELECT_INSTITUTION", "TRANSITION_VIEW/CREDENTIAL", "SUBMIT_CREDENTIALS",
			"TRANSITION_VIEW/SELECT_ACCOUNT", "TRANSITION_VIEW/CONNECTED", "HANDOFF"})
		u, _ := url.Parse(f.end)
		var accounts []struct {
			ID   string `json:"_id"`
			Meta struct {
				Name   string `json:"name"`
				Number string `json:"number"`
			} `json:"meta"`
			Type    string `json:"type"`
			Subtype string `json:"subtype"`
		}
		if err := json.Unmarshal([]byte(u.Query().Get("accounts")), &accounts); err != nil || len(accounts) != 2 ||
			accounts[0].ID == "" || accounts[0].Meta.Name != "Plaid Checking" || accounts[0].Meta.Number != "0000" ||
			accounts[0].Type != "depository" || accounts[1].Subtype != "savings" {
			t.Errorf("accounts = %+v (%v), want Plaid Checking 0000 and Plaid Saving in Plaid's format", accounts, err)
		}
		item := last.GetItem()
		if item.GetItemId() == "" || item.GetInstitutionId() != "ins_109508" || len(item.GetAccounts()) != 2 || item.GetLinkSessionId() != f.session {
			t.Fatalf("connected gave item %v", item)
		}
		items, err := env.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "browser-1"})
		if err != nil || len(items.GetItems()) != 1 || items.GetItems()[0].GetItemId() != item.GetItemId() {
			t.Errorf("ListItems = %v, %v; want the one Item", items, err)
		}
		// The public token was real and single-use: the emulator exchanged it once.
		if _, err := env.ts.emulator.CreatePublicToken(tok.GetLinkToken(), "ins_109508", nil); err != nil {
			t.Errorf("link token unusable after connect: %v", err)
		}
	})

	t.Run("WrongPasswordThenMFA", func(t *testing.T) {
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-2"})
		tab := env.browser.NewTab(t)
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.Screen("#view-consent", "consent")
		tab.Click("#consent-continue")
		tab.Type("#search", "tartan")
		tab.Click(`[data-institution-id="ins_109511"]`)
		tab.Type("#username", "user_good")
		tab.Type("#password", "wrong")
		tab.Click("#credential-submit")
		tab.Screen("#credential-error", "3b-credentials-error")
		var msg string
		tab.Run("read error", chromedp.Text("#credential-error", &msg, chromedp.ByQuery))
		if !strings.Contains(msg, "not correct") {
			t.Errorf("error shown = %q", msg)
		}
		tab.Type("#password", "pass_good")
		tab.Click("#credential-submit")
		tab.Screen("#view-mfa", "4-mfa")
		tab.Type("#code", "1234")
		tab.Click("#mfa-submit")
		tab.Screen("#view-select-account", "select-account")
		tab.Click("#account-submit")
		tab.Click("#connected-continue")

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("connected"))
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/SELECT_INSTITUTION",
			"SEARCH_INSTITUTION", "SELECT_INSTITUTION", "TRANSITION_VIEW/CREDENTIAL", "SUBMIT_CREDENTIALS", "ERROR",
			"SUBMIT_CREDENTIALS", "TRANSITION_VIEW/MFA", "SUBMIT_MFA", "TRANSITION_VIEW/SELECT_ACCOUNT",
			"TRANSITION_VIEW/CONNECTED", "HANDOFF"})
		if last.GetItem().GetInstitutionId() != "ins_109511" || len(last.GetItem().GetAccounts()) != 1 {
			t.Errorf("item = %v, want one account at Tartan Bank", last.GetItem())
		}
	})

	t.Run("CloseMidway", func(t *testing.T) {
		for _, tc := range []struct {
			name, search, institution, status string
		}{
			{"Credentials", "houndstooth", "ins_109512", "requires_credentials"},
			{"InstitutionNotFound", "no such bank", "", "institution_not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-3"})
				tab := env.browser.NewTab(t)
				tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
				tab.Click("#consent-continue")
				tab.Type("#search", tc.search)
				if tc.institution != "" {
					tab.Click(`[data-institution-id="` + tc.institution + `"]`)
					tab.Screen("#view-credential", "credentials")
				} else {
					tab.Screen("#no-results", "2b-institution-not-found")
				}
				tab.Click("#close")
				f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("exit"))
				if got := f.events[len(f.events)-1]; got != "EXIT" {
					t.Errorf("last event %s, want EXIT", got)
				}
				exit := last.GetExit()
				if exit.GetStatus() != tc.status || exit.GetInstitutionId() != tc.institution || exit.GetLinkSessionId() != f.session {
					t.Errorf("exit = %v, want status %s at %q", exit, tc.status, tc.institution)
				}
				sess, err := env.c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: f.session})
				if err != nil || sess.GetSession().GetExit().GetStatus() != tc.status {
					t.Errorf("session outcome = %v, %v", sess, err)
				}
			})
		}
	})

	t.Run("DesktopBrowser", func(t *testing.T) {
		// The README's path: with isWebview=false the page lists its
		// redirects instead of navigating to them.
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-7"})
		tab := env.browser.NewTab(t)
		tab.Run("open page", chromedp.Navigate(strings.Replace(tok.GetWebviewUrl(), "isWebview=true", "isWebview=false", 1)))
		tab.Click("#consent-continue")
		tab.Click(`[data-institution-id="ins_109512"]`)
		tab.Type("#username", "user_good")
		tab.Type("#password", "pass_good")
		tab.Click("#credential-submit")
		tab.Click("#account-submit")
		tab.Click("#connected-continue")
		tab.Screen("#browser-redirects", "redirects-listed")
		var log string
		tab.Run("read redirects", chromedp.Value("#redirect-log", &log, chromedp.ByQuery))
		navigated := len(tab.URLs())
		if navigated != 0 {
			t.Errorf("page navigated to %d plaidlink:// URLs outside a webview", navigated)
		}
		lines := strings.Split(log, "\n")
		if !strings.HasPrefix(lines[len(lines)-1], "plaidlink://connected?") {
			t.Fatalf("listed redirects end with %q, want the connected one", lines[len(lines)-1])
		}
		_, last := checkRedirects(t, env.c, tok.GetLinkToken(), lines)
		if last.GetItem().GetInstitutionId() != "ins_109512" {
			t.Errorf("item = %v", last.GetItem())
		}
	})

	t.Run("KeyboardOnly", func(t *testing.T) {
		// Tab, Enter and Escape get a user through Link without a pointer.
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-8"})
		tab := env.browser.NewTab(t)
		keys := func(what, k string) { t.Helper(); tab.Run(what, chromedp.KeyEvent(k)) }
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()), chromedp.WaitVisible("#view-consent", chromedp.ByQuery))
		keys("tab to Continue", "\t")
		keys("press Continue", "\r")
		tab.Run("wait for search", chromedp.WaitVisible("#search", chromedp.ByQuery))
		keys("search", "first")
		keys("tab to the bank", "\t")
		keys("choose it", "\r")
		tab.Run("wait for credentials", chromedp.WaitVisible("#username", chromedp.ByQuery))
		keys("username", "user_good\tpass_good\r")
		tab.Run("wait for accounts", chromedp.WaitVisible("#view-select-account", chromedp.ByQuery))
		keys("close", kb.Escape)
		_, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("exit"))
		if last.GetExit().GetStatus() != "requires_account_selection" {
			t.Errorf("exit = %v, want requires_account_selection", last.GetExit())
		}
	})

	t.Run("LockedAccount", func(t *testing.T) {
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-6"})
		tab := env.browser.NewTab(t)
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.Click("#consent-continue")
		tab.Click(`[data-institution-id="ins_109508"]`)
		tab.Type("#username", "user_good")
		tab.Type("#password", "error_ITEM_LOCKED")
		tab.Click("#credential-submit")
		tab.Screen("#view-error", "9-error")
		tab.Click("#error-exit")
		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("exit"))
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/SELECT_INSTITUTION",
			"SELECT_INSTITUTION", "TRANSITION_VIEW/CREDENTIAL", "SUBMIT_CREDENTIALS", "ERROR", "TRANSITION_VIEW/ERROR", "EXIT"})
		exit := last.GetExit()
		if exit.GetStatus() != "requires_credentials" || exit.GetError().GetErrorCode() != "ITEM_LOCKED" ||
			exit.GetError().GetErrorType() != "ITEM_ERROR" || exit.GetError().GetDisplayMessage() == "" || exit.GetInstitutionId() != "ins_109508" {
			t.Errorf("exit = %v, want requires_credentials with ITEM_ERROR/ITEM_LOCKED", exit)
		}
	})

	t.Run("ExpiredToken", func(t *testing.T) {
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-4"})
		if err := env.ts.emulator.ExpireLinkToken(tok.GetLinkToken()); err != nil {
			t.Fatal(err)
		}
		tab := env.browser.NewTab(t)
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.Screen("#view-error", "8-invalid-link-token")
		_, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("exit"))
		if e := last.GetExit().GetError(); e.GetErrorCode() != "INVALID_LINK_TOKEN" || e.GetErrorType() != "INVALID_INPUT" {
			t.Errorf("exit = %v, want INVALID_INPUT/INVALID_LINK_TOKEN", last.GetExit())
		}
	})

	t.Run("OAuth", func(t *testing.T) {
		redirectURI := env.app.URL + "/plaid/oauth-return"
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-5", RedirectUri: redirectURI})
		tab := env.browser.NewTab(t)
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.Click("#consent-continue")
		tab.Click(`[data-institution-id="ins_127287"]`)
		tab.Screen("#view-oauth", "7-oauth")
		tab.Click("#oauth-continue")
		relaunch := env.allowAtBank(t, tab, "7b-oauth-bank", tok.GetLinkToken(), redirectURI)
		connectAfterOAuth(t, tab, relaunch)

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("connected"))
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/SELECT_INSTITUTION",
			"SELECT_INSTITUTION", "TRANSITION_VIEW/OAUTH", "OPEN_OAUTH",
			"TRANSITION_VIEW/SELECT_ACCOUNT", "TRANSITION_VIEW/CONNECTED", "HANDOFF"})
		if last.GetItem().GetInstitutionId() != "ins_127287" {
			t.Errorf("item = %v, want Platypus OAuth Bank", last.GetItem())
		}
		// The same relaunch URL cannot resume twice.
		tab2 := env.browser.NewTab(t)
		tab2.Run("relaunch again", chromedp.Navigate(relaunch))
		_, again := checkRedirects(t, env.c, tok.GetLinkToken(), tab2.Redirects("exit"))
		if again.GetExit().GetError().GetErrorCode() != "OAUTH_STATE_ID_ALREADY_PROCESSED" {
			t.Errorf("second relaunch exit = %v", again.GetExit())
		}
	})

	t.Run("UpdateMode", func(t *testing.T) {
		// The repair loop, as an app runs it: link an Item in Link, Plaid
		// breaks its login, the app relaunches Link in update mode for it,
		// and the user logs in again. The Item reports to linkd's own
		// webhook URL, as the README's deployment does: that is how linkd
		// learns of the broken login.
		const user = "browser-9"
		exchanges := env.ts.emulator.Calls(exchangePath)
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: user, Webhook: env.ts.BaseURL + server.WebhookPath})
		tab := env.browser.NewTab(t)
		tab.Run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.Click("#consent-continue")
		tab.Type("#search", "first")
		tab.Click(`[data-institution-id="ins_109508"]`)
		tab.Type("#username", "user_good")
		tab.Type("#password", "pass_good")
		tab.Click("#credential-submit")
		tab.Click("#accounts label:nth-child(2)") // Checking and Saving
		tab.Click("#account-submit")
		tab.Click("#connected-continue")
		_, linked := checkRedirects(t, env.c, tok.GetLinkToken(), tab.Redirects("connected"))
		item := linked.GetItem()
		if item.GetItemId() == "" || item.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || len(item.GetAccounts()) != 2 {
			t.Fatalf("connected gave item %v, want a GOOD Item with two accounts", item)
		}

		// Plaid breaks the login; its ERROR webhook reaches linkd.
		if _, err := env.c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
			t.Fatalf("ResetSandboxItemLogin: %v", err)
		}
		got, err := env.c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
		if err != nil || got.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED || got.GetItem().GetErrorCode() != "ITEM_LOGIN_REQUIRED" {
			t.Fatalf("GetItem after reset_login = %v, %v; want LOGIN_REQUIRED", got, err)
		}

		upd := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: user, ItemId: item.GetItemId()})
		if !upd.GetUpdateMode() || upd.GetItemId() != item.GetItemId() {
			t.Fatalf("update-mode token = %v, want update_mode for %s", upd, item.GetItemId())
		}
		tab = env.browser.NewTab(t)
		tab.Run("open update-mode webview_url", chromedp.Navigate(upd.GetWebviewUrl()))
		tab.Screen("#view-consent", "update-consent")
		tab.Click("#consent-continue")
		// No institution select: straight to the Item's bank's login, with
		// no way back to pick another bank.
		tab.Screen("#view-credential", "update-credentials")
		var bank string
		var pickerShown, backShown bool
		tab.Run("read credentials view",
			chromedp.Text("#view-credential .ins-name", &bank, chromedp.ByQuery),
			chromedp.Evaluate(`!document.getElementById('view-select-institution').hidden`, &pickerShown),
			chromedp.Evaluate(`!document.getElementById('back').hidden`, &backShown))
		if bank != "First Platypus Bank" || pickerShown || backShown {
			t.Errorf("update-mode credentials for %q (institution select shown %v, back shown %v), want First Platypus Bank alone", bank, pickerShown, backShown)
		}
		if got, _ := env.c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: item.GetItemId()}); got.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
			t.Errorf("item before logging in again = %v, want still LOGIN_REQUIRED", got.GetItem())
		}
		tab.Type("#username", "user_good")
		tab.Type("#password", "pass_good")
		tab.Click("#credential-submit")
		// As Plaid's update mode without account_selection_enabled: no
		// account select; Link reports the Item's own accounts.
		tab.Screen("#view-connected", "update-connected")
		tab.Click("#connected-continue")

		urls := tab.Redirects("connected")
		f, last := checkRedirects(t, env.c, upd.GetLinkToken(), urls)
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/CREDENTIAL", "SUBMIT_CREDENTIALS",
			"TRANSITION_VIEW/CONNECTED", "HANDOFF"})
		if open, _ := url.Parse(urls[0]); open.Query().Get("event_name") != "OPEN" || open.Query().Get("is_update_mode") != "true" {
			t.Errorf("first redirect %s, want OPEN with is_update_mode=true", urls[0])
		}
		var reported, held []string
		for _, a := range last.GetConnected().GetAccounts() {
			reported = append(reported, a.GetId())
		}
		for _, a := range item.GetAccounts() {
			held = append(held, a.GetId())
		}
		if !slices.Equal(reported, held) {
			t.Errorf("update-mode connected reports accounts %v, want the Item's %v", reported, held)
		}
		sess, err := env.c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: f.session})
		if err != nil || len(sess.GetSession().GetEvents()) == 0 || !sess.GetSession().GetEvents()[0].GetIsUpdateMode() {
			t.Errorf("recorded session = %v, %v; want OPEN with is_update_mode", sess, err)
		}
		for _, e := range sess.GetSession().GetEvents()[1:] {
			if e.GetIsUpdateMode() {
				t.Errorf("%s recorded with is_update_mode: only OPEN carries it", e.GetEventName())
			}
		}

		if it := last.GetItem(); it.GetItemId() != item.GetItemId() || it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || it.GetErrorCode() != "" {
			t.Errorf("update-mode connected gave item %v, want %s GOOD", it, item.GetItemId())
		}
		got, err = env.c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
		if err != nil || got.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || len(got.GetItem().GetAccounts()) != len(item.GetAccounts()) {
			t.Errorf("GetItem after repair = %v, %v; want GOOD with its %d accounts", got, err, len(item.GetAccounts()))
		}
		items, err := env.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: user})
		if err != nil || len(items.GetItems()) != 1 || items.GetItems()[0].GetItemId() != item.GetItemId() {
			t.Errorf("ListItems = %v, %v; want the one Item", items, err)
		}
		if n := env.ts.emulator.Calls(exchangePath) - exchanges; n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1 in total: update mode exchanges nothing", n)
		}
	})

	t.Run("UpdateModeNewAccounts", func(t *testing.T) {
		// The bank opens an account (NEW_ACCOUNTS_AVAILABLE); a made-up
		// connected redirect leaves the flag; the user adds the account
		// in a webview update-mode session through linkd's own page,
		// which reports the session to the emulator before its connected
		// redirect, and linkd, which asks Plaid's /link/token/get before
		// it believes the redirect, finds it and clears the flag.
		const user = "browser-accounts"
		item := mustHostedItem(t, env.ts, env.c, user)
		id := item.GetItemId()
		if _, err := env.c.FireSandboxWebhook(ctx, &linkdv1.FireSandboxWebhookRequest{ItemId: id, WebhookCode: "NEW_ACCOUNTS_AVAILABLE"}); err != nil {
			t.Fatalf("FireSandboxWebhook: %v", err)
		}
		upd := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: user, ItemId: id,
			Update: &linkdv1.LinkTokenUpdate{AccountSelectionEnabled: true}})
		if _, err := env.c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: upd.GetLinkToken(),
			Url: connectedURL("public-sandbox-made-up", "sess-made-up")}); err != nil {
			t.Fatalf("SubmitRedirect(made up): %v", err)
		}
		if got := mustGetItem(t, env.c, id); !got.GetNewAccountsAvailable() {
			t.Fatalf("after a made-up update-mode redirect: %v; want new_accounts_available still set", got)
		}

		tab := env.browser.NewTab(t)
		tab.Run("open update-mode webview_url", chromedp.Navigate(upd.GetWebviewUrl()))
		tab.Click("#consent-continue")
		tab.Type("#username", "user_good")
		tab.Type("#password", "pass_good")
		tab.Click("#credential-submit")
		tab.Screen("#view-select-account", "update-new-account")
		tab.Click("#accounts input:not(:checked)") // the account the bank added
		tab.Click("#account-submit")
		tab.Click("#connected-continue")
		asked := env.ts.emulator.Calls("/link/token/get")
		checkRedirects(t, env.c, upd.GetLinkToken(), tab.Redirects("connected"))
		if env.ts.emulator.Calls("/link/token/get") == asked {
			t.Error("linkd took the update-mode connected redirect without asking Plaid's /link/token/get")
		}
		got := mustGetItem(t, env.c, id)
		if got.GetNewAccountsAvailable() || len(got.GetAccounts()) != len(item.GetAccounts())+1 {
			t.Fatalf("after the webview update-mode session: %v; want new_accounts_available cleared and %d accounts", got, len(item.GetAccounts())+1)
		}
	})

	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("browser tests took %v, want under 2 minutes", d)
	}
}
