package linkpage_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/linkd/linkd/internal/browsertest"
	"github.com/linkd/linkd/linkpage"
)

// TestPage_Browser_UpdateMode runs the page's JavaScript in headless
// Chromium for an update-mode link token over the fake backend: Link skips
// institution select and, as Plaid's update mode does unless asked for
// account select, account select too, reporting the Item's own accounts.
// (cmd/linkd's TestBrowser_Link/UpdateMode runs it against the emulator.)
func TestPage_Browser_UpdateMode(t *testing.T) {
	srv, _ := MustStartPage(t)
	b := browsertest.MustStart(t, srv.URL)
	tab := b.NewTab(t)
	tab.Run("open", chromedp.Navigate(srv.URL+linkpage.Path+"?isWebview=true&token=link-update"))
	tab.Click("#consent-continue")
	tab.Screen("#view-credential", "credentials")
	var backHidden bool
	tab.Run("back button", chromedp.Evaluate(`document.getElementById('back').hidden`, &backHidden))
	if !backHidden {
		t.Errorf("update mode offers Back to institution select")
	}
	tab.Type("#username", linkpage.SandboxUsername)
	tab.Type("#password", linkpage.SandboxPassword)
	tab.Click("#credential-submit")
	tab.Click("#connected-continue")

	urls := tab.Redirects("connected")
	events, _ := browsertest.CheckRedirects(t, urls)
	browsertest.WantEvents(t, events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/CREDENTIAL",
		"SUBMIT_CREDENTIALS", "TRANSITION_VIEW/CONNECTED", "HANDOFF"})
	open, _ := url.Parse(urls[0])
	if got := open.Query().Get("is_update_mode"); got != "true" {
		t.Errorf("OPEN is_update_mode = %q, want true", got)
	}
	connected, _ := url.Parse(urls[len(urls)-1])
	if q := connected.Query(); q.Get("institution_id") != "ins_109508" || q.Get("public_token") != "public-sandbox-test" ||
		!strings.Contains(q.Get("accounts"), `"_id":"acc-2"`) || strings.Contains(q.Get("accounts"), "acc-1") {
		t.Errorf("connected = %s, want the Item's acc-2 alone", urls[len(urls)-1])
	}
}

// TestPage_Browser_UpdateModeAccountSelection: with Plaid's
// update.account_selection_enabled, update mode shows account select with
// the Item's account checked and the new one offered; the user adds it.
func TestPage_Browser_UpdateModeAccountSelection(t *testing.T) {
	srv, _ := MustStartPage(t)
	tab := signInUpdateMode(t, srv.URL, "link-update-select")
	tab.Screen("#view-select-account", "account select")
	var checked []string
	tab.Run("checked accounts", chromedp.Evaluate(`Array.prototype.map.call(document.querySelectorAll('#accounts input:checked'), function (i) { return i.value; })`, &checked))
	if strings.Join(checked, ",") != "acc-2" {
		t.Errorf("checked accounts = %v, want the Item's acc-2", checked)
	}
	tab.Click(`#accounts input[value="acc-new"]`)
	tab.Click("#account-submit")
	tab.Click("#connected-continue")

	urls := tab.Redirects("connected")
	events, _ := browsertest.CheckRedirects(t, urls)
	browsertest.WantEvents(t, events, []string{"OPEN", "TRANSITION_VIEW/CONSENT", "TRANSITION_VIEW/CREDENTIAL",
		"SUBMIT_CREDENTIALS", "TRANSITION_VIEW/SELECT_ACCOUNT", "TRANSITION_VIEW/CONNECTED", "HANDOFF"})
	connected, _ := url.Parse(urls[len(urls)-1])
	if accounts := connected.Query().Get("accounts"); !strings.Contains(accounts, `"_id":"acc-2"`) || !strings.Contains(accounts, `"_id":"acc-new"`) || strings.Contains(accounts, "acc-1") {
		t.Errorf("connected accounts = %s, want acc-2 and acc-new", accounts)
	}
}

// TestPage_Browser_ReportHangs: a webview session's final redirect waits
// for its report (api/finish) only so long: a report that never answers
// still lets the connected redirect go. It waited for ever.
func TestPage_Browser_ReportHangs(t *testing.T) {
	_, backend := MustStartPage(t)
	page := linkpage.New(linkpage.Options{Backend: backend})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/api/finish") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		page.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(release)
	tab := signInUpdateMode(t, srv.URL, "link-update")
	tab.Click("#connected-continue")
	urls := tab.Redirects("connected")
	browsertest.CheckRedirects(t, urls)
}

// signInUpdateMode opens the page at base in a webview tab for the
// update-mode token and signs in with the sandbox credentials.
func signInUpdateMode(t *testing.T, base, token string) *browsertest.Tab {
	b := browsertest.MustStart(t, base)
	tab := b.NewTab(t)
	tab.Run("open", chromedp.Navigate(base+linkpage.Path+"?isWebview=true&token="+token))
	tab.Click("#consent-continue")
	tab.Type("#username", linkpage.SandboxUsername)
	tab.Type("#password", linkpage.SandboxPassword)
	tab.Click("#credential-submit")
	return tab
}
