package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestCheckLinkTokenOptions: each option Plaid checks is checked here
// first, and a mistake names linkd's field ("" means accepted).
func TestCheckLinkTokenOptions(t *testing.T) {
	req := func(edit func(r *linkdv1.CreateLinkTokenRequest)) *linkdv1.CreateLinkTokenRequest {
		r := &linkdv1.CreateLinkTokenRequest{ClientUserId: "u", Products: []string{"transactions"}}
		edit(r)
		return r
	}
	update := func(r *linkdv1.CreateLinkTokenRequest) { r.ItemId, r.Products = "item-1", nil }
	completion := func(uri string) *linkdv1.CreateLinkTokenRequest {
		return req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.HostedLink = &linkdv1.HostedLink{CompletionRedirectUri: uri}
		})
	}
	for _, tt := range []struct {
		name  string
		req   *linkdv1.CreateLinkTokenRequest
		field string
	}{
		{"None", req(func(r *linkdv1.CreateLinkTokenRequest) {}), ""},
		// client_name: shown to the end user, any length Plaid takes
		// (over 30 characters too), printable.
		{"ClientNameLong", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "Platypus Personal Finance Manager Pro" }), ""},
		{"ClientNameControl", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "App\nName" }), "client_name"},
		{"ClientNameNUL", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "App\x00" }), "client_name"},
		// What real names hold passes: a no-break space, an emoji family
		// (joined with U+200D), a left-to-right mark, an ideographic space.
		{"ClientNameNoBreakSpace", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "Caf\u00e9\u00a0Budget" }), ""},
		{"ClientNameEmojiZWJ", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.ClientName = "Family \U0001F468\u200D\U0001F469\u200D\U0001F467 Money"
		}), ""},
		{"ClientNameMarks", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "\u05D1\u05E0\u05E7\u200E App\u3000\u00ADX" }), ""},
		// What reorders or breaks what Link shows does not.
		{"ClientNameBidiOverride", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "App\u202Egnp.exe" }), "client_name"},
		{"ClientNameBidiIsolate", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "App\u2067x" }), "client_name"},
		{"ClientNameLineSeparator", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "App\u2028Name" }), "client_name"},
		{"ClientNameC1", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = "App\u0085Name" }), "client_name"},
		{"ClientNameHuge", req(func(r *linkdv1.CreateLinkTokenRequest) { r.ClientName = strings.Repeat("a", 257) }), "client_name"},
		// Hosted Link: an empty object asks for it, as with Plaid.
		{"HostedEmpty", req(func(r *linkdv1.CreateLinkTokenRequest) { r.HostedLink = &linkdv1.HostedLink{} }), ""},
		{"HostedFull", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.HostedLink = &linkdv1.HostedLink{CompletionRedirectUri: "myapp://done", UrlLifetimeSeconds: 3600, IsMobileApp: true}
		}), ""},
		{"HostedHTTPSRedirect", completion("https://app.example.com/done"), ""},
		{"HostedRelativeRedirect", completion("/done"), "hosted_link.completion_redirect_uri"},
		// An https URI must name a host to go to.
		{"HostedHTTPSRedirectNoHost", completion("https:///done"), "hosted_link.completion_redirect_uri"},
		{"HostedHTTPSRedirectOpaque", completion("https:done"), "hosted_link.completion_redirect_uri"},
		{"HostedHTTPSRedirectPortOnly", completion("https://:443/done"), "hosted_link.completion_redirect_uri"},
		{"HostedAppSchemeRedirectPath", completion("myapp:/done"), ""},
		// A page goes to it when the session ends: a URI that runs script
		// where it is opened (the emulator's page, on linkd's origin) is
		// not a place to return to.
		{"HostedJavascriptRedirect", completion("javascript:alert(document.domain)"), "hosted_link.completion_redirect_uri"},
		{"HostedJavascriptRedirectUpper", completion("JavaScript://app.example.com/%0aalert(1)"), "hosted_link.completion_redirect_uri"},
		{"HostedDataRedirect", completion("data:text/html,<script>alert(1)</script>"), "hosted_link.completion_redirect_uri"},
		{"HostedVBScriptRedirect", completion("vbscript:msgbox(1)"), "hosted_link.completion_redirect_uri"},
		{"HostedLifetimeNegative", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.HostedLink = &linkdv1.HostedLink{UrlLifetimeSeconds: -1}
		}), "hosted_link.url_lifetime_seconds"},
		{"HostedLifetime21Days", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.HostedLink = &linkdv1.HostedLink{UrlLifetimeSeconds: 21 * 24 * 3600}
		}), ""},
		{"HostedLifetimeOver21Days", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.HostedLink = &linkdv1.HostedLink{UrlLifetimeSeconds: 21*24*3600 + 1}
		}), "hosted_link.url_lifetime_seconds"},
		// android_package_name: Plaid's native Android SDK only.
		{"AndroidPackageWebview", req(func(r *linkdv1.CreateLinkTokenRequest) { r.AndroidPackageName = "com.example.app" }), "android_package_name"},
		{"AndroidPackageHosted", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.AndroidPackageName, r.HostedLink = "com.example.app", &linkdv1.HostedLink{}
		}), "android_package_name"},
		// user: Plaid's prefill fields.
		{"UserFull", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.User = &linkdv1.LinkTokenUser{LegalName: "Ada Lovelace", PhoneNumber: "+14155550011", EmailAddress: "ada@example.com",
				DateOfBirth: "1815-12-10", Address: &linkdv1.UserAddress{Street: "1 Main St", City: "Springfield", Region: "IL", PostalCode: "62701", Country: "US"}}
		}), ""},
		{"UserPhoneNotE164", req(func(r *linkdv1.CreateLinkTokenRequest) { r.User = &linkdv1.LinkTokenUser{PhoneNumber: "415-555-0011"} }), "user.phone_number"},
		{"UserEmail", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.User = &linkdv1.LinkTokenUser{EmailAddress: "ada at example"}
		}), "user.email_address"},
		{"UserEmailWithName", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.User = &linkdv1.LinkTokenUser{EmailAddress: "Ada <ada@example.com>"}
		}), "user.email_address"},
		{"UserDateOfBirthFormat", req(func(r *linkdv1.CreateLinkTokenRequest) { r.User = &linkdv1.LinkTokenUser{DateOfBirth: "12/10/1815"} }), "user.date_of_birth"},
		{"UserDateOfBirthNotADay", req(func(r *linkdv1.CreateLinkTokenRequest) { r.User = &linkdv1.LinkTokenUser{DateOfBirth: "1815-02-30"} }), "user.date_of_birth"},
		{"UserDateOfBirthFuture", req(func(r *linkdv1.CreateLinkTokenRequest) { r.User = &linkdv1.LinkTokenUser{DateOfBirth: "2999-01-01"} }), "user.date_of_birth"},
		{"UserAddressNoCountry", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.User = &linkdv1.LinkTokenUser{Address: &linkdv1.UserAddress{City: "Springfield"}}
		}), "user.address.country"},
		{"UserLegalNameControl", req(func(r *linkdv1.CreateLinkTokenRequest) { r.User = &linkdv1.LinkTokenUser{LegalName: "Ada\x00"} }), "user.legal_name"},
		// Product lists: Plaid's names, no overlap, no balance.
		{"ProductLists", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.OptionalProducts, r.RequiredIfSupportedProducts, r.AdditionalConsentedProducts = []string{"liabilities"}, []string{"identity"}, []string{"auth"}
		}), ""},
		{"OptionalOverlapsProducts", req(func(r *linkdv1.CreateLinkTokenRequest) { r.OptionalProducts = []string{"auth", "transactions"} }), "optional_products[1]"},
		{"RequiredIfSupportedBadName", req(func(r *linkdv1.CreateLinkTokenRequest) { r.RequiredIfSupportedProducts = []string{"Auth"} }), "required_if_supported_products[0]"},
		{"AdditionalOverlapsOptional", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.OptionalProducts, r.AdditionalConsentedProducts = []string{"auth"}, []string{"auth"}
		}), "additional_consented_products[0]"},
		{"AdditionalBalance", req(func(r *linkdv1.CreateLinkTokenRequest) { r.AdditionalConsentedProducts = []string{"balance"} }), "additional_consented_products[0]"},
		{"ProductsBalance", req(func(r *linkdv1.CreateLinkTokenRequest) { r.Products = []string{"auth", "balance"} }), "products[1]"},
		// account_filters, in Plaid's JSON shape.
		{"AccountFilters", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.AccountFilters = map[string]*linkdv1.AccountSubtypes{"depository": {AccountSubtypes: []string{"checking", "savings"}}, "credit": {AccountSubtypes: []string{"credit card"}}}
		}), ""},
		{"AccountFiltersUnknownType", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.AccountFilters = map[string]*linkdv1.AccountSubtypes{"crypto": {AccountSubtypes: []string{"all"}}}
		}), "account_filters.crypto"},
		{"AccountFiltersEmpty", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.AccountFilters = map[string]*linkdv1.AccountSubtypes{"loan": {}}
		}), "account_filters.loan.account_subtypes"},
		{"AccountFiltersBadSubtype", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.AccountFilters = map[string]*linkdv1.AccountSubtypes{"depository": {AccountSubtypes: []string{"checking", "Checking!"}}}
		}), "account_filters.depository.account_subtypes[1]"},
		{"Customization", req(func(r *linkdv1.CreateLinkTokenRequest) { r.LinkCustomizationName = "default" }), ""},
		{"CustomizationBad", req(func(r *linkdv1.CreateLinkTokenRequest) { r.LinkCustomizationName = "a/b" }), "link_customization_name"},
		// transactions.days_requested: fixed at link time.
		{"DaysRequested", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.Transactions = &linkdv1.LinkTokenTransactions{DaysRequested: 730}
		}), ""},
		{"DaysRequestedOver", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.Transactions = &linkdv1.LinkTokenTransactions{DaysRequested: 731}
		}), "transactions.days_requested"},
		{"DaysRequestedNegative", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.Transactions = &linkdv1.LinkTokenTransactions{DaysRequested: -1}
		}), "transactions.days_requested"},
		{"DaysRequestedUpdateMode", req(func(r *linkdv1.CreateLinkTokenRequest) {
			update(r)
			r.Transactions = &linkdv1.LinkTokenTransactions{DaysRequested: 365}
		}), "transactions.days_requested"},
		// update: update mode only.
		{"UpdateAccountSelection", req(func(r *linkdv1.CreateLinkTokenRequest) {
			update(r)
			r.Update = &linkdv1.LinkTokenUpdate{AccountSelectionEnabled: true}
		}), ""},
		{"UpdateWithoutItem", req(func(r *linkdv1.CreateLinkTokenRequest) {
			r.Update = &linkdv1.LinkTokenUpdate{AccountSelectionEnabled: true}
		}), "update.account_selection_enabled"},
		{"InstitutionID", req(func(r *linkdv1.CreateLinkTokenRequest) { r.InstitutionId = "ins_109508" }), ""},
		{"InstitutionIDBad", req(func(r *linkdv1.CreateLinkTokenRequest) { r.InstitutionId = "chase" }), "institution_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLinkTokenOptions(tt.req)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *linkd.Error
			if linkd.ErrorCode(err) != linkd.EINVALID || !errors.As(err, &e) || e.Field != tt.field {
				t.Fatalf("err = %v, want EINVALID naming %s", err, tt.field)
			}
		})
	}
}
