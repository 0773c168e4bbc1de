// Package browsertest runs headless Chromium for linkd's browser tests and
// records what a webview's navigation delegate would see: every
// plaidlink:// navigation a page requests, read from the browser's own
// Page.frameRequestedNavigation event, never from a hook in the page.
//
// LINKD_CHROMIUM names the browser; else chromium is looked up on PATH.
// Screenshots of each screen are written on failure to
// testdata-out/<test>/ (or LINKD_SCREENSHOT_DIR). With LINKD_SCREENSHOT_DIR
// set, the screens of passing tests named "<digit>..." are written there
// too: that is how docs/screenshots/ is made.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// EventKeys are the keys every event redirect carries, valued or not.
var EventKeys = []string{"event_name", "error_type", "error_code", "error_message", "exit_status",
	"institution_id", "institution_name", "institution_search_query", "is_update_mode", "match_reason",
	"mfa_type", "view_name", "request_id", "link_session_id", "timestamp", "selection"}

// TimestampRE matches Plaid's event timestamp: ISO 8601, milliseconds, Z.
var TimestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// FindChromium returns the browser to run, or "" when there is none.
func FindChromium() string {
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

// Browser is one headless Chromium for a test's linkd.
type Browser struct {
	ctx context.Context
}

// MustStart starts headless Chromium with a fresh profile at a
// 390×844 viewport, allowed to hand plaidlink:// URLs from origin to the
// system without asking. It skips the test when no Chromium is installed.
func MustStart(tb testing.TB, origin string) *Browser {
	tb.Helper()
	bin := FindChromium()
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
	return &Browser{ctx: ctx}
}

// Tab is one browser tab running Link: the redirects it fired, in
// order, and the screenshots taken along the way.
type Tab struct {
	t     *testing.T
	ctx   context.Context
	mu    sync.Mutex
	urls  []string
	shots []shot
	// refused counts the windows closed by RefusePopups.
	refused int
}

type shot struct {
	name string
	png  []byte
}

// NewTab opens a tab at 390×844 that records plaidlink:// navigations,
// and writes its screenshots at cleanup if the test failed.
func (b *Browser) NewTab(t *testing.T) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	return newTab(t, ctx, cancel)
}

// newTab records the plaidlink:// navigations of the tab ctx drives.
func newTab(t *testing.T, ctx context.Context, cancel context.CancelFunc) *Tab {
	t.Helper()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	tab := &Tab{t: t, ctx: ctx}
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
			tab.Shot("failure")
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

// Run runs browser actions, failing the test (with a screenshot) on error.
func (tab *Tab) Run(what string, actions ...chromedp.Action) {
	tab.t.Helper()
	if err := chromedp.Run(tab.ctx, actions...); err != nil {
		tab.t.Fatalf("%s: %v", what, err)
	}
}

// Screen waits for a view to show and screenshots it as name.
func (tab *Tab) Screen(view, name string) {
	tab.t.Helper()
	tab.Run("wait for "+view, chromedp.WaitVisible(view, chromedp.ByQuery))
	tab.Shot(name)
}

// Shot keeps a screenshot of the viewport as name.
func (tab *Tab) Shot(name string) {
	var png []byte
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Sleep(150*time.Millisecond), chromedp.CaptureScreenshot(&png)); err != nil {
		tab.t.Logf("screenshot %s: %v", name, err)
		return
	}
	tab.shots = append(tab.shots, shot{name, png})
}

func (tab *Tab) writeShots(dir string) {
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

// Click clicks sel once it is visible, as a pointer would.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.Run("click "+sel, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
}

// Type types text into sel key by key.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	tab.Run("type into "+sel, chromedp.SendKeys(sel, text, chromedp.ByQuery, chromedp.NodeVisible))
}

// Redirects waits until the tab has fired a redirect whose host is last
// ("connected", "exit") and returns all redirects so far.
func (tab *Tab) Redirects(last string) []string {
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
			tab.Shot("timeout")
			tab.t.Fatalf("no plaidlink://%s redirect; got %d redirects:\n%s", last, len(urls), strings.Join(urls, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Popups returns the windows the tab has opened (window.open) and the
// browser still holds, from the browser's own target list: each is a
// target whose opener is this tab, what a webview asks its app's UI
// delegate to create.
func (tab *Tab) Popups() []target.ID {
	tab.t.Helper()
	var infos []*target.Info
	tab.Run("list targets", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		infos, err = chromedp.Targets(ctx)
		return err
	}))
	self := chromedp.FromContext(tab.ctx).Target.TargetID
	var ids []target.ID
	for _, info := range infos {
		if info.OpenerID == self && info.Type == "page" {
			ids = append(ids, info.TargetID)
		}
	}
	return ids
}

// RefusePopups makes the tab's app refuse every window the page opens,
// as an app whose webview does not handle popups (no WKUIDelegate
// createWebViewWith, no WebChromeClient onCreateWindow) never shows one:
// each new target whose opener is this tab is closed as soon as the
// browser reports it (Target.targetCreated). Refused counts them.
func (tab *Tab) RefusePopups() {
	self := chromedp.FromContext(tab.ctx).Target.TargetID
	chromedp.ListenTarget(tab.ctx, func(ev any) {
		e, ok := ev.(*target.EventTargetCreated)
		if !ok || e.TargetInfo.OpenerID != self || e.TargetInfo.Type != "page" {
			return
		}
		tab.mu.Lock()
		tab.refused++
		tab.mu.Unlock()
		// Not from the listener itself: it runs on chromedp's event loop.
		go chromedp.Run(tab.ctx, target.CloseTarget(e.TargetInfo.TargetID)) //nolint:errcheck // Popups shows a window that stayed
	})
}

// Refused returns how many windows RefusePopups has closed.
func (tab *Tab) Refused() int {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return tab.refused
}

// Popup waits until the tab has opened a window and returns a Tab driving
// it, as an app's UI delegate takes the new window to show it (Plaid asks
// for a secure browser: SFSafariViewController, a Chrome Custom Tab). It
// fails the test when no window opens within 10 seconds.
func (tab *Tab) Popup() *Tab {
	tab.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ids := tab.Popups(); len(ids) > 0 {
			ctx, cancel := chromedp.NewContext(tab.ctx, chromedp.WithTargetID(ids[0]))
			return newTab(tab.t, ctx, cancel)
		}
		if time.Now().After(deadline) {
			tab.Shot("no-popup")
			tab.t.Fatalf("the page opened no window")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitPopupsClosed waits until every window the tab opened has closed,
// failing the test after 10 seconds.
func (tab *Tab) WaitPopupsClosed() {
	tab.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(tab.Popups()) > 0 {
		if time.Now().After(deadline) {
			tab.t.Fatalf("the tab's windows are still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URLs returns the plaidlink:// URLs the tab has navigated to so far.
func (tab *Tab) URLs() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return slices.Clone(tab.urls)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// CheckRedirects checks the redirects of one Link session as Plaid's
// webview documentation describes them: every event carries every key in
// EventKeys (valueless ones bare), an ISO 8601 timestamp with milliseconds
// and a request_id; all share one link_session_id, a UUID. It returns the
// "EVENT_NAME" or "EVENT_NAME/VIEW_NAME" of each event, in order, and the
// session id.
func CheckRedirects(t testing.TB, urls []string) (events []string, session string) {
	t.Helper()
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("redirect %q: %v", raw, err)
		}
		q := u.Query()
		if u.Host == "event" {
			for _, k := range EventKeys {
				if !strings.Contains("&"+u.RawQuery+"&", "&"+k+"&") && !strings.Contains("&"+u.RawQuery, "&"+k+"=") {
					t.Errorf("event %s lacks key %s: %s", q.Get("event_name"), k, raw)
				}
			}
			if !TimestampRE.MatchString(q.Get("timestamp")) {
				t.Errorf("timestamp %q is not ISO 8601 with ms and Z", q.Get("timestamp"))
			}
			if q.Get("request_id") == "" {
				t.Errorf("event %s has no request_id", q.Get("event_name"))
			}
			name := q.Get("event_name")
			if v := q.Get("view_name"); v != "" {
				name += "/" + v
			}
			events = append(events, name)
		}
		if s := q.Get("link_session_id"); session == "" {
			session = s
		} else if s != session {
			t.Errorf("link_session_id %q, want the session's %q", s, session)
		}
	}
	if !uuidRE.MatchString(session) {
		t.Errorf("link_session_id %q is not a UUID", session)
	}
	return events, session
}

// WantEvents fails the test unless got equals want.
func WantEvents(t testing.TB, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("events:\n  %v\nwant:\n  %v", got, want)
	}
}
