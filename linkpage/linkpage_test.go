package linkpage_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/linkd/linkd/linkpage"
)

// fakeBackend is a sandbox with two institutions and tokens set by the test.
type fakeBackend struct {
	mu     sync.Mutex
	tokens map[string]linkpage.Token
	issued int
}

func (b *fakeBackend) LinkToken(token string) (linkpage.Token, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tok, ok := b.tokens[token]
	if !ok {
		return linkpage.Token{}, &linkpage.Error{Type: "INVALID_INPUT", Code: "INVALID_LINK_TOKEN", Message: "provided link token has expired"}
	}
	return tok, nil
}

func (b *fakeBackend) Institutions() []linkpage.Institution {
	acc := []linkpage.Account{{ID: "acc-1", Name: "Plaid Checking", Mask: "0000", Type: "depository", Subtype: "checking"},
		{ID: "acc-2", Name: "Plaid Saving", Mask: "1111", Type: "depository", Subtype: "savings"}}
	return []linkpage.Institution{
		{ID: "ins_109508", Name: "First Platypus Bank", Accounts: acc},
		{ID: linkpage.MFAInstitutionID, Name: "Tartan Bank", Accounts: acc},
		{ID: "ins_127287", Name: "Platypus OAuth Bank", OAuth: true, Accounts: acc},
	}
}

func (b *fakeBackend) CreatePublicToken(linkToken, institutionID string, accountIDs []string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.issued++
	return "public-sandbox-test", nil
}

// MustStartPage serves a Page over a fake backend that knows link-good
// (redirect_uri https://app.example.com/return?x=1), link-update (an
// Item at ins_109508 holding acc-2 alone) and link-update-select (that
// Item in update mode with account selection, offering acc-new besides
// the institution's accounts).
func MustStartPage(t *testing.T) (*httptest.Server, *fakeBackend) {
	t.Helper()
	b := &fakeBackend{tokens: map[string]linkpage.Token{
		"link-good":   {ClientName: "Acme", RedirectURI: "https://app.example.com/return?x=1"},
		"link-update": {UpdateMode: true, InstitutionID: "ins_109508", AccountIDs: []string{"acc-2"}},
		"link-update-select": {UpdateMode: true, InstitutionID: "ins_109508", AccountIDs: []string{"acc-2"}, AccountSelection: true,
			Accounts: []linkpage.Account{{ID: "acc-1", Name: "Plaid Checking", Mask: "0000", Type: "depository", Subtype: "checking"},
				{ID: "acc-2", Name: "Plaid Saving", Mask: "1111", Type: "depository", Subtype: "savings"},
				{ID: "acc-new", Name: "Plaid New Checking", Mask: "5555", Type: "depository", Subtype: "checking"}}},
		"link-update-oauth": {UpdateMode: true, InstitutionID: "ins_127287", AccountIDs: []string{"acc-2"},
			RedirectURI: "https://app.example.com/return"},
	}}
	srv := httptest.NewServer(linkpage.New(linkpage.Options{Backend: b}))
	t.Cleanup(srv.Close)
	return srv, b
}

var configRE = regexp.MustCompile(`<script type="application/json" id="link-config">(.*?)</script>`)

type config struct {
	LinkSessionID string `json:"link_session_id"`
	RequestID     string `json:"request_id"`
	UpdateMode    bool   `json:"update_mode"`
	// AccountSelection and SelectedAccountIDs: update mode with account
	// select.
	AccountSelection   bool     `json:"account_selection"`
	SelectedAccountIDs []string `json:"selected_account_ids"`
	Resumed            bool     `json:"resumed"`
	Status             string   `json:"status"`
	Institution        *struct {
		ID       string             `json:"id"`
		Accounts []linkpage.Account `json:"accounts"`
	} `json:"institution"`
	Error *linkpage.Error `json:"error"`
}

// open loads the page and returns the config it starts from.
func open(t *testing.T, srv *httptest.Server, query string) config {
	t.Helper()
	resp, err := http.Get(srv.URL + linkpage.Path + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET link.html: %d %s", resp.StatusCode, body)
	}
	m := configRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no config in page:\n%s", body)
	}
	var c config
	if err := json.Unmarshal(m[1], &c); err != nil {
		t.Fatalf("config %s: %v", m[1], err)
	}
	return c
}

type answer struct {
	RequestID   string          `json:"request_id"`
	Error       *linkpage.Error `json:"error"`
	Fatal       bool            `json:"fatal"`
	Next        string          `json:"next"`
	URL         string          `json:"url"`
	PublicToken string          `json:"public_token"`
}

func call(t *testing.T, srv *httptest.Server, step string, body map[string]any) answer {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(srv.URL+linkpage.Prefix+"api/"+step, "application/json", strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if a.RequestID == "" {
		t.Errorf("%s: no request_id", step)
	}
	return a
}

func wantError(t *testing.T, a answer, code string, fatal bool) {
	t.Helper()
	if a.Error == nil || a.Error.Code != code || a.Fatal != fatal {
		t.Fatalf("answer = %+v (error %+v), want %s fatal=%v", a, a.Error, code, fatal)
	}
}

func TestPage_Open(t *testing.T) {
	srv, _ := MustStartPage(t)
	t.Run("OK", func(t *testing.T) {
		c := open(t, srv, "isWebview=true&token=link-good")
		if c.Error != nil || c.UpdateMode || c.Institution != nil || c.RequestID == "" ||
			!regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(c.LinkSessionID) {
			t.Errorf("config = %+v", c)
		}
		if open(t, srv, "token=link-good").LinkSessionID == c.LinkSessionID {
			t.Errorf("two opens share a link_session_id")
		}
	})
	t.Run("UpdateMode", func(t *testing.T) {
		c := open(t, srv, "isWebview=true&token=link-update")
		if !c.UpdateMode || c.Institution == nil || c.Institution.ID != "ins_109508" ||
			len(c.Institution.Accounts) != 1 || c.Institution.Accounts[0].ID != "acc-2" {
			t.Errorf("config = %+v, want update mode preselecting ins_109508 with the Item's acc-2 alone", c)
		}
		if c.AccountSelection {
			t.Errorf("account_selection set for a token without it")
		}
	})
	t.Run("UpdateModeAccountSelection", func(t *testing.T) {
		c := open(t, srv, "isWebview=true&token=link-update-select")
		var ids []string
		if c.Institution != nil {
			for _, a := range c.Institution.Accounts {
				ids = append(ids, a.ID)
			}
		}
		if !c.UpdateMode || !c.AccountSelection || strings.Join(ids, ",") != "acc-1,acc-2,acc-new" || strings.Join(c.SelectedAccountIDs, ",") != "acc-2" {
			t.Errorf("config = %+v (accounts %v), want update mode offering acc-1,acc-2,acc-new with acc-2 selected", c, ids)
		}
	})
	t.Run("ErrInvalidLinkToken", func(t *testing.T) {
		c := open(t, srv, "isWebview=true&token=link-expired")
		if c.Error == nil || c.Error.Code != "INVALID_LINK_TOKEN" || c.Error.Type != "INVALID_INPUT" {
			t.Errorf("config = %+v, want INVALID_LINK_TOKEN", c)
		}
	})
	t.Run("Assets", func(t *testing.T) {
		for path, ctype := range map[string]string{"assets/link.js": "text/javascript", "assets/link.css": "text/css"} {
			resp, err := http.Get(srv.URL + linkpage.Prefix + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
				t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
		resp, err := http.Get(srv.URL + linkpage.Prefix + "assets/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("assets/ listing: %d, want 404", resp.StatusCode)
		}
	})
}

func TestPage_Credentials(t *testing.T) {
	srv, b := MustStartPage(t)
	session := func(t *testing.T) map[string]any {
		c := open(t, srv, "isWebview=true&token=link-good")
		return map[string]any{"link_token": "link-good", "link_session_id": c.LinkSessionID, "institution_id": "ins_109508"}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}

	t.Run("WrongThenGoodThenConnectOnce", func(t *testing.T) {
		s := session(t)
		wantError(t, call(t, srv, "connect", with(s, "account_ids", []string{"acc-1"})), "INVALID_FIELD", true)
		wantError(t, call(t, srv, "credentials", with(s, "username", "user_good", "password", "nope")), "INVALID_CREDENTIALS", false)
		if a := call(t, srv, "credentials", with(s, "username", "user_good", "password", "pass_good")); a.Error != nil || a.Next != "select_account" {
			t.Fatalf("good credentials: %+v", a)
		}
		wantError(t, call(t, srv, "connect", with(s, "account_ids", []string{})), "MISSING_FIELDS", false)
		if a := call(t, srv, "connect", with(s, "account_ids", []string{"acc-1"})); a.PublicToken == "" {
			t.Fatalf("connect: %+v", a)
		}
		wantError(t, call(t, srv, "connect", with(s, "account_ids", []string{"acc-1"})), "INVALID_FIELD", true)
		if b.issued != 1 {
			t.Errorf("public tokens issued = %d, want 1", b.issued)
		}
	})
	t.Run("ErrorPassword", func(t *testing.T) {
		a := call(t, srv, "credentials", with(session(t), "username", "user_good", "password", "error_ITEM_LOCKED"))
		wantError(t, a, "ITEM_LOCKED", true)
		if a.Error.Type != "ITEM_ERROR" || a.Error.DisplayMessage == "" {
			t.Errorf("error = %+v", a.Error)
		}
	})
	t.Run("MFA", func(t *testing.T) {
		s := with(session(t), "institution_id", linkpage.MFAInstitutionID)
		wantError(t, call(t, srv, "mfa", with(s, "code", "1234")), "INVALID_FIELD", true) // not asked yet
		if a := call(t, srv, "credentials", with(s, "username", "user_good", "password", "pass_good")); a.Next != "mfa" {
			t.Fatalf("credentials at Tartan Bank: %+v, want next mfa", a)
		}
		wantError(t, call(t, srv, "connect", with(s, "account_ids", []string{"acc-1"})), "INVALID_FIELD", true)
		wantError(t, call(t, srv, "mfa", with(s, "code", "0000")), "INVALID_MFA", false)
		if a := call(t, srv, "mfa", with(s, "code", "1234")); a.Next != "select_account" {
			t.Fatalf("mfa: %+v", a)
		}
	})
	t.Run("ErrSession", func(t *testing.T) {
		wantError(t, call(t, srv, "credentials", map[string]any{"link_token": "link-good", "link_session_id": "nope"}), "INVALID_FIELD", true)
		wantError(t, call(t, srv, "credentials", map[string]any{"link_token": "link-expired"}), "INVALID_LINK_TOKEN", true)
	})
}

func TestPage_OAuth(t *testing.T) {
	srv, _ := MustStartPage(t)
	c := open(t, srv, "isWebview=true&token=link-good")
	s := map[string]any{"link_token": "link-good", "link_session_id": c.LinkSessionID, "institution_id": "ins_127287"}
	a := call(t, srv, "oauth", s)
	if a.Error != nil || !strings.HasPrefix(a.URL, linkpage.Prefix+"oauth/authorize?oauth_state_id=") {
		t.Fatalf("oauth: %+v", a)
	}
	stateID := strings.TrimPrefix(a.URL, linkpage.Prefix+"oauth/authorize?oauth_state_id=")

	// Relaunching before the bank granted access fails.
	if c := open(t, srv, "token=link-good&receivedRedirectUri="+url.QueryEscape("https://app.example.com/return?oauth_state_id="+stateID)); c.Error == nil {
		t.Fatalf("resume before authorize: %+v", c)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + a.URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bank page: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = client.PostForm(srv.URL+linkpage.Prefix+"oauth/authorize", url.Values{"oauth_state_id": {stateID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc != "https://app.example.com/return?oauth_state_id="+stateID+"&x=1" {
		t.Fatalf("authorize: %d Location %q", resp.StatusCode, loc)
	}

	wrongToken := open(t, srv, "token=link-update&receivedRedirectUri="+url.QueryEscape(loc))
	if wrongToken.Error == nil || wrongToken.Error.Code != "OAUTH_STATE_ID_NOT_FOUND" {
		t.Errorf("resume with another link token: %+v", wrongToken)
	}
	resumed := open(t, srv, "token=link-good&receivedRedirectUri="+url.QueryEscape(loc))
	if !resumed.Resumed || resumed.LinkSessionID != c.LinkSessionID || resumed.Institution == nil || resumed.Institution.ID != "ins_127287" {
		t.Fatalf("resume: %+v, want the same session at ins_127287", resumed)
	}
	if a := call(t, srv, "connect", map[string]any{"link_token": "link-good", "link_session_id": c.LinkSessionID,
		"institution_id": "ins_127287", "account_ids": []string{"acc-1"}}); a.PublicToken == "" {
		t.Fatalf("connect after OAuth: %+v", a)
	}
	again := open(t, srv, "token=link-good&receivedRedirectUri="+url.QueryEscape(loc))
	if again.Error == nil || again.Error.Code != "OAUTH_STATE_ID_ALREADY_PROCESSED" || again.Status != "requires_oauth" {
		t.Errorf("second resume: %+v", again)
	}
}

// TestPage_OAuthUpdateMode: Link relaunched after OAuth in update mode is
// still in update mode, for the Item's accounts alone.
func TestPage_OAuthUpdateMode(t *testing.T) {
	srv, _ := MustStartPage(t)
	c := open(t, srv, "isWebview=true&token=link-update-oauth")
	a := call(t, srv, "oauth", map[string]any{"link_token": "link-update-oauth", "link_session_id": c.LinkSessionID, "institution_id": "ins_127287"})
	stateID, ok := strings.CutPrefix(a.URL, linkpage.Prefix+"oauth/authorize?oauth_state_id=")
	if a.Error != nil || !ok {
		t.Fatalf("oauth: %+v", a)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(srv.URL+linkpage.Prefix+"oauth/authorize", url.Values{"oauth_state_id": {stateID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resumed := open(t, srv, "isWebview=true&token=link-update-oauth&receivedRedirectUri="+url.QueryEscape(resp.Header.Get("Location")))
	if !resumed.Resumed || !resumed.UpdateMode || resumed.Institution == nil || resumed.Institution.ID != "ins_127287" ||
		len(resumed.Institution.Accounts) != 1 || resumed.Institution.Accounts[0].ID != "acc-2" {
		t.Errorf("resume: %+v, want update mode at ins_127287 with the Item's acc-2 alone", resumed)
	}
}

// TestPage_OAuthStateReplaced: a session has one OAuth state; starting
// OAuth again forgets the old state, so an unauthenticated page cannot be
// made to pile states up, nor resume with a state meant for another start.
func TestPage_OAuthStateReplaced(t *testing.T) {
	srv, _ := MustStartPage(t)
	c := open(t, srv, "isWebview=true&token=link-good")
	s := map[string]any{"link_token": "link-good", "link_session_id": c.LinkSessionID, "institution_id": "ins_127287"}
	first := strings.TrimPrefix(call(t, srv, "oauth", s).URL, linkpage.Prefix+"oauth/authorize?oauth_state_id=")
	second := strings.TrimPrefix(call(t, srv, "oauth", s).URL, linkpage.Prefix+"oauth/authorize?oauth_state_id=")
	if first == "" || second == "" || first == second {
		t.Fatalf("states %q, %q", first, second)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(srv.URL+linkpage.Prefix+"oauth/authorize", url.Values{"oauth_state_id": {first}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther {
		t.Errorf("the replaced state was still authorized (Location %q)", resp.Header.Get("Location"))
	}
	stale := open(t, srv, "token=link-good&receivedRedirectUri="+url.QueryEscape("https://app.example.com/return?oauth_state_id="+first+"&x=1"))
	if stale.Error == nil || stale.Error.Code != "OAUTH_STATE_ID_NOT_FOUND" {
		t.Errorf("resume with the replaced state: %+v", stale)
	}
}
