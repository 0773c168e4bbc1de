package plaid_test

import (
	"context"
	"strings"
	"testing"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
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
