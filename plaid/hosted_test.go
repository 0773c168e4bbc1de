package plaid_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

// TestClient_CreateLinkToken_Options: every option goes to Plaid in
// Plaid's JSON (the emulator checks each as Plaid's spec does, so one out
// of Plaid's bounds comes back as Plaid's INVALID_FIELD), and a Hosted Link
// token comes back with its hosted_link_url.
func TestClient_CreateLinkToken_Options(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	all := func() linkd.LinkTokenOptions {
		o := linkTokenOptions()
		o.HostedLink = &linkdv1.HostedLink{CompletionRedirectUri: "myapp://done", UrlLifetimeSeconds: 600, IsMobileApp: true}
		o.User = &linkdv1.LinkTokenUser{LegalName: "Ada Lovelace", PhoneNumber: "+14155550011", EmailAddress: "ada@example.com",
			DateOfBirth: "1815-12-10", Address: &linkdv1.UserAddress{Street: "1 Main St", City: "Springfield", Region: "IL", PostalCode: "62701", Country: "US"}}
		o.OptionalProducts = []string{"liabilities"}
		o.RequiredIfSupportedProducts = []string{"identity"}
		o.AdditionalConsentedProducts = []string{"investments"}
		o.AccountFilters = map[string]*linkdv1.AccountSubtypes{"depository": {AccountSubtypes: []string{"checking"}}, "credit": {AccountSubtypes: []string{"credit card"}}}
		o.LinkCustomizationName = "default"
		o.DaysRequested = 730
		o.InstitutionID = "ins_109508"
		return o
	}
	res, err := c.CreateLinkToken(ctx, all())
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	if !strings.Contains(res.HostedLinkURL, "token="+res.LinkToken) {
		t.Errorf("HostedLinkURL = %q", res.HostedLinkURL)
	}
	webview := linkTokenOptions()
	if res, err := c.CreateLinkToken(ctx, webview); err != nil || res.HostedLinkURL != "" {
		t.Errorf("webview token: %+v, %v; want no hosted_link_url", res, err)
	}
	for name, edit := range map[string]func(o *linkd.LinkTokenOptions){
		"DaysRequested":    func(o *linkd.LinkTokenOptions) { o.DaysRequested = 731 },
		"Phone":            func(o *linkd.LinkTokenOptions) { o.User.PhoneNumber = "4155550011" },
		"OptionalOverlap":  func(o *linkd.LinkTokenOptions) { o.OptionalProducts = []string{"auth"} },
		"UpdateNotUpdate":  func(o *linkd.LinkTokenOptions) { o.AccountSelectionEnabled = true },
		"HostedAndAndroid": func(o *linkd.LinkTokenOptions) { o.AndroidPackageName = "com.example.app" },
	} {
		t.Run("ErrPlaid_"+name, func(t *testing.T) {
			o := all()
			edit(&o)
			_, err := c.CreateLinkToken(ctx, o)
			WantError(t, err, linkd.EINVALID, "INVALID_FIELD")
		})
	}
}

// TestClient_GetLinkToken: /link/token/get's sessions come back with their
// item_add_results (public token, institution, accounts), exits and events.
func TestClient_GetLinkToken(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	o := linkTokenOptions()
	o.HostedLink = &linkdv1.HostedLink{}
	tok, err := c.CreateLinkToken(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.GetLinkToken(ctx, tok.LinkToken)
	if err != nil || len(st.Sessions) != 0 || st.Expiration.IsZero() {
		t.Fatalf("before a session: %+v, %v", st, err)
	}
	id, publicToken, err := e.CompleteLinkSession(tok.LinkToken, "ins_109508", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CompleteLinkSession(tok.LinkToken, "ins_109508", "requires_credentials"); err != nil {
		t.Fatal(err)
	}
	st, err = c.GetLinkToken(ctx, tok.LinkToken)
	if err != nil || len(st.Sessions) != 2 {
		t.Fatalf("GetLinkToken = %+v, %v; want two sessions", st, err)
	}
	s := st.Sessions[0]
	if s.LinkSessionID != id || !s.Finished() || len(s.ItemAdds) != 1 || s.Exit != nil {
		t.Fatalf("session = %+v", s)
	}
	add := s.ItemAdds[0]
	if add.GetPublicToken() != publicToken || add.GetInstitutionId() != "ins_109508" || add.GetInstitutionName() == "" ||
		len(add.GetAccounts()) == 0 || add.GetAccounts()[0].GetMask() == "" || add.GetLinkSessionId() != id {
		t.Errorf("item_add_result = %v", add)
	}
	if len(s.Events) == 0 || s.Events[0].GetEventName() != "OPEN" || s.Events[0].GetEventId() == "" || s.Events[0].GetTimestamp() == nil {
		t.Errorf("events = %v", s.Events)
	}
	if ex := st.Sessions[1].Exit; ex == nil || ex.GetStatus() != "requires_credentials" || ex.GetInstitutionId() != "ins_109508" {
		t.Errorf("exit = %v", ex)
	}
	_, err = c.GetLinkToken(ctx, "link-sandbox-00000000-0000-0000-0000-000000000000")
	WantError(t, err, linkd.EINVALID, "INVALID_LINK_TOKEN")
}

// TestClient_GetLinkToken_WebviewSessions: sessions a webview runs through
// linkd's own Link page, which reports each as it ends (as Plaid's Link
// reports every session to Plaid), come back from /link/token/get like
// Hosted Link ones, in Plaid's shape: an update-mode session that went
// through with its finished_at and item_add_results, one the user left
// with its exit, each under the page's link_session_id with the page's
// events.
func TestClient_GetLinkToken_WebviewSessions(t *testing.T) {
	e := MustStartEmulator(t)
	c := MustNewClient(t, e.URL())
	ctx := context.Background()
	item := MustCreateItem(t, c)
	opts := linkTokenOptions()
	opts.Products, opts.AccessToken, opts.AccountSelectionEnabled = nil, item.AccessToken, true
	tok, err := c.CreateLinkToken(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now().Truncate(time.Second)

	// What the page does for a session the user left, then one that
	// connected: its public token from connect, then its report.
	opened := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	if err := e.FinishLinkSession(tok.LinkToken, "page-session-exit", "", "ins_109508", nil, "requires_credentials",
		[]plaidemu.LinkEvent{{Name: "OPEN", Timestamp: opened, Metadata: map[string]string{"request_id": "req-1"}}}); err != nil {
		t.Fatal(err)
	}
	publicToken, err := e.CreatePublicToken(tok.LinkToken, "ins_109508", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.FinishLinkSession(tok.LinkToken, "page-session-ok", publicToken, "ins_109508", nil, "",
		[]plaidemu.LinkEvent{{Name: "OPEN", Timestamp: opened}, {Name: "HANDOFF", Timestamp: opened}}); err != nil {
		t.Fatal(err)
	}

	st, err := c.GetLinkToken(ctx, tok.LinkToken)
	if err != nil || len(st.Sessions) != 2 {
		t.Fatalf("GetLinkToken = %+v, %v; want both webview sessions", st, err)
	}
	left, done := st.Sessions[0], st.Sessions[1]
	if left.LinkSessionID != "page-session-exit" || left.Exit == nil || left.Exit.GetStatus() != "requires_credentials" ||
		left.Exit.GetInstitutionId() != "ins_109508" || len(left.ItemAdds) != 0 || left.FinishedAt.Before(began) {
		t.Errorf("exited session = %+v", left)
	}
	if done.LinkSessionID != "page-session-ok" || done.Exit != nil || len(done.ItemAdds) != 1 || done.FinishedAt.Before(began) ||
		done.ItemAdds[0].GetPublicToken() != publicToken || len(done.ItemAdds[0].GetAccounts()) == 0 {
		t.Errorf("connected session = %+v", done)
	}
	if len(done.Events) != 2 || done.Events[1].GetEventName() != "HANDOFF" || done.Events[1].GetEventId() == "" ||
		done.Events[0].GetLinkSessionId() != "page-session-ok" || !done.StartedAt.Equal(done.Events[0].GetTimestamp().AsTime().Truncate(time.Second)) {
		t.Errorf("events = %v (started %v)", done.Events, done.StartedAt)
	}
	if !linkd.UpdateModeConfirmed(st.Sessions, began) {
		t.Error("UpdateModeConfirmed = false for the session that went through")
	}
	if linkd.UpdateModeConfirmed(st.Sessions[:1], began) {
		t.Error("UpdateModeConfirmed = true for a session the user exited")
	}
}
