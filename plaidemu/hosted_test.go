package plaidemu_test

import (
	"strings"
	"testing"
)

// TestEmulator_LinkTokenOptions: /link/token/create checks the options
// linkd passes through as Plaid's spec does, and Hosted Link tokens get a
// hosted_link_url.
func TestEmulator_LinkTokenOptions(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	for _, tt := range []struct {
		name string
		set  map[string]any
		ok   bool
	}{
		{"HostedEmpty", map[string]any{"hosted_link": map[string]any{}}, true},
		{"HostedFull", map[string]any{"hosted_link": map[string]any{"completion_redirect_uri": "myapp://done", "url_lifetime_seconds": 600, "is_mobile_app": true}}, true},
		// The page goes there when the session ends, on the emulator's origin.
		{"HostedJavascriptRedirect", map[string]any{"hosted_link": map[string]any{"completion_redirect_uri": "javascript:alert(document.domain)"}}, false},
		{"HostedDataRedirect", map[string]any{"hosted_link": map[string]any{"completion_redirect_uri": "DATA:text/html,<script>alert(1)</script>"}}, false},
		{"HostedLifetimeZero", map[string]any{"hosted_link": map[string]any{"url_lifetime_seconds": 0}}, false},
		{"HostedLifetimeOver", map[string]any{"hosted_link": map[string]any{"url_lifetime_seconds": 21*24*3600 + 1}}, false},
		{"HostedAndroid", map[string]any{"hosted_link": map[string]any{}, "android_package_name": "com.example.app"}, false},
		{"User", map[string]any{"user": map[string]any{"client_user_id": "u", "legal_name": "Ada", "phone_number": "+14155550011",
			"email_address": "ada@example.com", "date_of_birth": "1815-12-10", "address": map[string]any{"city": "x", "country": "US"}}}, true},
		{"UserPhone", map[string]any{"user": map[string]any{"client_user_id": "u", "phone_number": "4155550011"}}, false},
		{"UserAddressNoCountry", map[string]any{"user": map[string]any{"client_user_id": "u", "address": map[string]any{"city": "x"}}}, false},
		{"Optional", map[string]any{"optional_products": []string{"liabilities"}, "required_if_supported_products": []string{"identity"},
			"additional_consented_products": []string{"investments"}}, true},
		{"OptionalOverlap", map[string]any{"optional_products": []string{"auth"}}, false},
		{"OptionalUnknown", map[string]any{"optional_products": []string{"crypto"}}, false},
		{"AccountFilters", map[string]any{"account_filters": map[string]any{"depository": map[string]any{"account_subtypes": []string{"checking"}}}}, true},
		{"AccountFiltersType", map[string]any{"account_filters": map[string]any{"crypto": map[string]any{"account_subtypes": []string{"all"}}}}, false},
		{"DaysRequested", map[string]any{"transactions": map[string]any{"days_requested": 730}}, true},
		{"DaysRequestedOver", map[string]any{"transactions": map[string]any{"days_requested": 731}}, false},
		{"UpdateWithoutAccessToken", map[string]any{"update": map[string]any{"account_selection_enabled": true}}, false},
		{"Customization", map[string]any{"link_customization_name": "default"}, true},
		{"InstitutionID", map[string]any{"institution_id": "ins_109508"}, true},
		{"InstitutionIDBad", map[string]any{"institution_id": "chase"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := linkTokenBody()
			for k, v := range tt.set {
				body[k] = v
			}
			r := Post(t, e, "/link/token/create", body)
			if !tt.ok {
				code := "INVALID_FIELD"
				if strings.HasSuffix(tt.name, "NoCountry") {
					code = "MISSING_FIELDS" // Plaid's code for a required field left out
				}
				WantError(t, r, 400, "INVALID_REQUEST", code)
				return
			}
			WantOK(t, r)
			_, hosted := tt.set["hosted_link"]
			if got := r.Str("hosted_link_url"); hosted != (got != "") || (hosted && !strings.Contains(got, "token="+r.Str("link_token"))) {
				t.Errorf("hosted_link_url = %q (hosted %v)", got, hosted)
			}
		})
	}
}

// TestEmulator_LinkTokenGet: a completed session is in /link/token/get
// with its item_add_results and events; an exit with its status.
func TestEmulator_LinkTokenGet(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	body := linkTokenBody()
	body["hosted_link"] = map[string]any{}
	token := MustCreateLinkToken(t, e, body)
	id, publicToken, err := e.CompleteLinkSession(token, "ins_109508", "")
	if err != nil || publicToken == "" {
		t.Fatalf("CompleteLinkSession: %q, %v", publicToken, err)
	}
	if _, _, err := e.CompleteLinkSession(token, "ins_109508", "requires_credentials"); err != nil {
		t.Fatalf("CompleteLinkSession(exit): %v", err)
	}
	r := Post(t, e, "/link/token/get", map[string]any{"link_token": token})
	WantOK(t, r)
	for _, want := range []string{`"link_session_id":"` + id, `"public_token":"` + publicToken, `"item_add_results"`,
		`"institution_id":"ins_109508"`, `"event_id"`, `"status":"requires_credentials"`} {
		if !strings.Contains(r.Raw, want) {
			t.Errorf("/link/token/get has no %s: %s", want, r.Raw)
		}
	}
	WantError(t, Post(t, e, "/link/token/get", map[string]any{"link_token": "link-sandbox-nope"}), 400, "INVALID_INPUT", "INVALID_LINK_TOKEN")
}
