package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// These tests drive linkd's emulated Link page in headless Chromium, as an
// app's webview would: open webview_url, click through, and take every
// plaidlink:// navigation the page makes from the browser itself
// (Page.frameRequestedNavigation, the DevTools twin of WKWebView's
// decidePolicyFor navigationAction), then submit each to SubmitRedirect.
//
// LINKD_CHROMIUM names the browser; else chromium is looked up on PATH.
// Screenshots of each screen are written on failure to
// testdata-out/<test>/ (or LINKD_SCREENSHOT_DIR). With LINKD_SCREENSHOT_DIR
// set, the numbered screens of passing tests are written there too: that is
// how docs/screenshots/ is made.

// eventKeys are the keys every event redirect carries, valued or not.
var eventKeys = []string{"event_name", "error_type", "error_code", "error_message", "exit_status",
	"institution_id", "institution_name", "institution_search_query", "is_update_mode", "match_reason",
	"mfa_type", "view_name", "request_id", "link_session_id", "timestamp", "selection"}

var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// findChromium returns the browser to run, or "" when there is none.
func findChromium() string {
	if p := os.Getenv("LINKD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// testBrowser is one headless Chromium for a test's linkd.
type testBrowser struct {
	ctx context.Context
}

// MustStartBrowser starts headless Chromium with a fresh profile at a
// 390×844 viewport, allowed to hand plaidlink:// URLs from origin to the
// system without asking. It skips the test when no Chromium is installed.
func MustStartBrowser(tb testing.TB, origin string) *testBrowser {
	tb.Helper()
	bin := findChromium()
	if bin == "" {
		tb.Skip("no Chromium found (install Debian's chromium package, or set LINKD_CHROMIUM): skipping the browser tests")
	}
	// Not tb.TempDir: Chromium's helpers may still be writing the profile
	// when the test ends, so removal is retried.
	dir, err := os.MkdirTemp("", "linkd-chromium-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// For a scheme no app handles, Chromium asks "Open xdg-open?" in a
	// tab-modal dialog that blocks all input to the page. Allowing
	// plaidlink for linkd's origin in the profile skips the dialog;
	// Chromium then passes the URL to xdg-open, which a no-op on PATH
	// swallows, as the app's navigation delegate would.
	prefs := map[string]any{"protocol_handler": map[string]any{
		"allowed_origin_protocol_pairs": map[string]any{origin: map[string]bool{"plaidlink": true}},
	}}
	raw, _ := json.Marshal(prefs)
	binDir := filepath.Join(dir, "bin")
	profile := filepath.Join(dir, "profile")
	for _, d := range []string{binDir, filepath.Join(profile, "Default")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(binDir, "xdg-open"), []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		tb.Fatal(err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(390, 844),
		chromedp.Env("PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH")),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	if err = chromedp.Run(ctx); err != nil {
		tb.Fatalf("start Chromium %s: %v", bin, err)
	}
	return &testBrowser{ctx: ctx}
}

// linkTab is one browser tab running Link: the redirects it fired, in
// order, and the screenshots taken along the way.
type linkTab struct {
	t     *testing.T
	ctx   context.Context
	mu    sync.Mutex
	urls  []string
	shots []shot
}

type shot struct {
	name string
	png  []byte
}

// NewTab opens a tab at 390×844 that records plaidlink:// navigations,
// and writes its screenshots at cleanup if the test failed.
func (b *testBrowser) NewTab(t *testing.T) *linkTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	tab := &linkTab{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*page.EventFrameRequestedNavigation); ok && strings.HasPrefix(e.URL, "plaidlink:") {
			tab.mu.Lock()
			tab.urls = append(tab.urls, e.URL)
			tab.mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	t.Cleanup(func() {
		dir := os.Getenv("LINKD_SCREENSHOT_DIR")
		if t.Failed() {
			tab.shot("failure")
			if dir == "" {
				dir = filepath.Join("testdata-out", strings.ReplaceAll(t.Name(), "/", "_"))
			}
		}
		if dir != "" {
			tab.writeShots(dir)
		}
		cancelTimeout()
		cancel()
	})
	return tab
}

// run runs browser actions, failing the test (with a screenshot) on error.
func (tab *linkTab) run(what string, actions ...chromedp.Action) {
	tab.t.Helper()
	if err := chromedp.Run(tab.ctx, actions...); err != nil {
		tab.t.Fatalf("%s: %v", what, err)
	}
}

// screen waits for a view to show and screenshots it as name.
func (tab *linkTab) screen(view, name string) {
	tab.t.Helper()
	tab.run("wait for "+view, chromedp.WaitVisible(view, chromedp.ByQuery))
	tab.shot(name)
}

func (tab *linkTab) shot(name string) {
	var png []byte
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Sleep(150*time.Millisecond), chromedp.CaptureScreenshot(&png)); err != nil {
		tab.t.Logf("screenshot %s: %v", name, err)
		return
	}
	tab.shots = append(tab.shots, shot{name, png})
}

func (tab *linkTab) writeShots(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tab.t.Logf("screenshots: %v", err)
		return
	}
	docs := os.Getenv("LINKD_SCREENSHOT_DIR") != "" && !tab.t.Failed()
	for i, s := range tab.shots {
		name := fmt.Sprintf("%02d-%s", i+1, s.name)
		if docs {
			// The documented screens are the ones named "<n>-<screen>".
			if s.name[0] < '0' || s.name[0] > '9' {
				continue
			}
			name = s.name
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), s.png, 0o644); err != nil {
			tab.t.Logf("screenshots: %v", err)
		}
	}
	tab.t.Logf("screenshots in %s", dir)
}

func (tab *linkTab) click(sel string) {
	tab.t.Helper()
	tab.run("click "+sel, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
}

func (tab *linkTab) typeInto(sel, text string) {
	tab.t.Helper()
	tab.run("type into "+sel, chromedp.SendKeys(sel, text, chromedp.ByQuery, chromedp.NodeVisible))
}

// redirects waits until the tab has fired a redirect whose host is last
// ("connected", "exit") and returns all redirects so far.
func (tab *linkTab) redirects(last string) []string {
	tab.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab.mu.Lock()
		urls := slices.Clone(tab.urls)
		tab.mu.Unlock()
		if n := len(urls); n > 0 && strings.HasPrefix(urls[n-1], "plaidlink://"+last+"?") {
			return urls
		}
		if time.Now().After(deadline) {
			tab.shot("timeout")
			tab.t.Fatalf("no plaidlink://%s redirect; got %d redirects:\n%s", last, len(urls), strings.Join(urls, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flow is what a test checks of the redirects of one Link session.
type flow struct {
	linkToken string
	// events are the event_name[/view_name] of each event redirect, in order.
	events []string
	// end is the final redirect.
	end string
	// session is the link_session_id of every redirect.
	session string
}

// checkRedirects checks each redirect's shape (every event key present,
// one session id, ISO timestamps), submits each to SubmitRedirect in order
// as the app would, and checks the session linkd recorded.
func checkRedirects(t *testing.T, c linkdv1.LinkServiceClient, linkToken string, urls []string) (flow, *linkdv1.SubmitRedirectResponse) {
	t.Helper()
	f := flow{linkToken: linkToken}
	var last *linkdv1.SubmitRedirectResponse
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("redirect %q: %v", raw, err)
		}
		q := u.Query()
		if u.Host == "event" {
			for _, k := range eventKeys {
				if !strings.Contains("&"+u.RawQuery+"&", "&"+k+"&") && !strings.Contains("&"+u.RawQuery, "&"+k+"=") {
					t.Errorf("event %s lacks key %s: %s", q.Get("event_name"), k, raw)
				}
			}
			if !timestampRE.MatchString(q.Get("timestamp")) {
				t.Errorf("timestamp %q is not ISO 8601 with ms and Z", q.Get("timestamp"))
			}
			if q.Get("request_id") == "" {
				t.Errorf("event %s has no request_id", q.Get("event_name"))
			}
			name := q.Get("event_name")
			if v := q.Get("view_name"); v != "" {
				name += "/" + v
			}
			f.events = append(f.events, name)
		} else {
			f.end = raw
		}
		if s := q.Get("link_session_id"); f.session == "" {
			f.session = s
		} else if s != f.session {
			t.Errorf("link_session_id %q, want the session's %q", s, f.session)
		}
		last, err = c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: raw, LinkToken: linkToken})
		if err != nil {
			t.Fatalf("SubmitRedirect(%s): %v", raw, err)
		}
	}
	if _, err := uuidParse(f.session); err != nil {
		t.Errorf("link_session_id %q is not a UUID", f.session)
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

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func uuidParse(s string) (string, error) {
	if !uuidRE.MatchString(s) {
		return "", fmt.Errorf("not a uuid")
	}
	return s, nil
}

func wantEvents(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("events:\n  %v\nwant:\n  %v", got, want)
	}
}

// browserEnv is a linkd, a client and a browser shared by the subtests.
type browserEnv struct {
	ts      *testServer
	c       linkdv1.LinkServiceClient
	browser *testBrowser
	// app is the app's own site: the OAuth redirect_uri lands there.
	app *httptest.Server
}

func mustBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	if findChromium() == "" {
		t.Skip("no Chromium found (install Debian's chromium package, or set LINKD_CHROMIUM): skipping the browser tests")
	}
	ts := MustStartServer(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><meta name="viewport" content="width=device-width"><title>App</title><h1 id="back-in-app">Back in the app</h1>`)
	}))
	t.Cleanup(app.Close)
	return &browserEnv{ts: ts, c: ts.REST(), browser: MustStartBrowser(t, "http://"+ts.HTTPAddr()), app: app}
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

func TestBrowser_Link(t *testing.T) {
	start := time.Now()
	env := mustBrowserEnv(t)
	ctx := context.Background()

	t.Run("Connect", func(t *testing.T) {
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-1"})
		tab := env.browser.NewTab(t)
		tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.screen("#view-consent", "1-consent")
		tab.click("#consent-continue")
		tab.screen("#view-select-institution", "2-select-institution")
		tab.typeInto("#search", "first")
		tab.click(`[data-institution-id="ins_109508"]`)
		tab.screen("#view-credential", "3-credentials")
		tab.typeInto("#username", "user_good")
		tab.typeInto("#password", "pass_good")
		tab.click("#credential-submit")
		tab.screen("#view-select-account", "5-select-account")
		tab.click("#accounts label:nth-child(2)") // Plaid Saving, beside the preselected Checking
		tab.click("#account-submit")
		tab.screen("#view-connected", "6-connected")
		tab.click("#connected-continue")

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("connected"))
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
		tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.screen("#view-consent", "consent")
		tab.click("#consent-continue")
		tab.typeInto("#search", "tartan")
		tab.click(`[data-institution-id="ins_109511"]`)
		tab.typeInto("#username", "user_good")
		tab.typeInto("#password", "wrong")
		tab.click("#credential-submit")
		tab.screen("#credential-error", "3b-credentials-error")
		var msg string
		tab.run("read error", chromedp.Text("#credential-error", &msg, chromedp.ByQuery))
		if !strings.Contains(msg, "not correct") {
			t.Errorf("error shown = %q", msg)
		}
		tab.typeInto("#password", "pass_good")
		tab.click("#credential-submit")
		tab.screen("#view-mfa", "4-mfa")
		tab.typeInto("#code", "1234")
		tab.click("#mfa-submit")
		tab.screen("#view-select-account", "select-account")
		tab.click("#account-submit")
		tab.click("#connected-continue")

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("connected"))
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
				tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
				tab.click("#consent-continue")
				tab.typeInto("#search", tc.search)
				if tc.institution != "" {
					tab.click(`[data-institution-id="` + tc.institution + `"]`)
					tab.screen("#view-credential", "credentials")
				} else {
					tab.screen("#no-results", "2b-institution-not-found")
				}
				tab.click("#close")
				f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("exit"))
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
		tab.run("open page", chromedp.Navigate(strings.Replace(tok.GetWebviewUrl(), "isWebview=true", "isWebview=false", 1)))
		tab.click("#consent-continue")
		tab.click(`[data-institution-id="ins_109512"]`)
		tab.typeInto("#username", "user_good")
		tab.typeInto("#password", "pass_good")
		tab.click("#credential-submit")
		tab.click("#account-submit")
		tab.click("#connected-continue")
		tab.screen("#browser-redirects", "redirects-listed")
		var log string
		tab.run("read redirects", chromedp.Value("#redirect-log", &log, chromedp.ByQuery))
		tab.mu.Lock()
		navigated := len(tab.urls)
		tab.mu.Unlock()
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
		keys := func(what, k string) { tab.t.Helper(); tab.run(what, chromedp.KeyEvent(k)) }
		tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()), chromedp.WaitVisible("#view-consent", chromedp.ByQuery))
		keys("tab to Continue", "\t")
		keys("press Continue", "\r")
		tab.run("wait for search", chromedp.WaitVisible("#search", chromedp.ByQuery))
		keys("search", "first")
		keys("tab to the bank", "\t")
		keys("choose it", "\r")
		tab.run("wait for credentials", chromedp.WaitVisible("#username", chromedp.ByQuery))
		keys("username", "user_good\tpass_good\r")
		tab.run("wait for accounts", chromedp.WaitVisible("#view-select-account", chromedp.ByQuery))
		keys("close", kb.Escape)
		_, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("exit"))
		if last.GetExit().GetStatus() != "requires_account_selection" {
			t.Errorf("exit = %v, want requires_account_selection", last.GetExit())
		}
	})

	t.Run("LockedAccount", func(t *testing.T) {
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-6"})
		tab := env.browser.NewTab(t)
		tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.click("#consent-continue")
		tab.click(`[data-institution-id="ins_109508"]`)
		tab.typeInto("#username", "user_good")
		tab.typeInto("#password", "error_ITEM_LOCKED")
		tab.click("#credential-submit")
		tab.screen("#view-error", "9-error")
		tab.click("#error-exit")
		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("exit"))
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
		tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.screen("#view-error", "8-invalid-link-token")
		_, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("exit"))
		if e := last.GetExit().GetError(); e.GetErrorCode() != "INVALID_LINK_TOKEN" || e.GetErrorType() != "INVALID_INPUT" {
			t.Errorf("exit = %v, want INVALID_INPUT/INVALID_LINK_TOKEN", last.GetExit())
		}
	})

	t.Run("OAuth", func(t *testing.T) {
		redirectURI := env.app.URL + "/plaid/oauth-return"
		tok := env.linkToken(t, &linkdv1.CreateLinkTokenRequest{ClientUserId: "browser-5", RedirectUri: redirectURI})
		tab := env.browser.NewTab(t)
		tab.run("open webview_url", chromedp.Navigate(tok.GetWebviewUrl()))
		tab.click("#consent-continue")
		tab.click(`[data-institution-id="ins_127287"]`)
		tab.screen("#view-oauth", "7-oauth")
		tab.click("#oauth-continue")
		tab.screen("#bank-allow", "7b-oauth-bank")
		tab.click("#bank-allow")
		tab.screen("#back-in-app", "back-in-app")
		var landed string
		tab.run("read location", chromedp.Location(&landed))
		if !strings.HasPrefix(landed, redirectURI+"?oauth_state_id=") {
			t.Fatalf("OAuth landed at %q, want %s?oauth_state_id=...", landed, redirectURI)
		}
		// The app, opened at redirect_uri, asks linkd for the URL that
		// relaunches Link with what it received.
		resumed, err := env.c.ResumeOAuth(ctx, &linkdv1.ResumeOAuthRequest{LinkToken: tok.GetLinkToken(), ReceivedRedirectUri: landed})
		if err != nil {
			t.Fatalf("ResumeOAuth(%s): %v", landed, err)
		}
		relaunch := resumed.GetWebviewUrl()
		tab.run("relaunch Link", chromedp.Navigate(relaunch))
		tab.screen("#view-select-account", "select-account-after-oauth")
		tab.click("#account-submit")
		tab.click("#connected-continue")

		f, last := checkRedirects(t, env.c, tok.GetLinkToken(), tab.redirects("connected"))
		wantEvents(t, f.events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/SELECT_INSTITUTION",
			"SELECT_INSTITUTION", "TRANSITION_VIEW/OAUTH", "OPEN_OAUTH",
			"TRANSITION_VIEW/SELECT_ACCOUNT", "TRANSITION_VIEW/CONNECTED", "HANDOFF"})
		if last.GetItem().GetInstitutionId() != "ins_127287" {
			t.Errorf("item = %v, want Platypus OAuth Bank", last.GetItem())
		}
		// The same relaunch URL cannot resume twice.
		tab2 := env.browser.NewTab(t)
		tab2.run("relaunch again", chromedp.Navigate(relaunch))
		_, again := checkRedirects(t, env.c, tok.GetLinkToken(), tab2.redirects("exit"))
		if again.GetExit().GetError().GetErrorCode() != "OAUTH_STATE_ID_ALREADY_PROCESSED" {
			t.Errorf("second relaunch exit = %v", again.GetExit())
		}
	})

	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("browser tests took %v, want under 2 minutes", d)
	}
}
