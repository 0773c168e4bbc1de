package plaidemu_test

import (
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd/plaidemu"
)

func TestEmulator_LinkTokenInfo(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)
	newLinkToken := func(t *testing.T, body map[string]any) string { return MustCreateLinkToken(t, e, body) }

	t.Run("OK", func(t *testing.T) {
		body := linkTokenBody()
		body["redirect_uri"] = "https://app.example.com/oauth"
		body["webhook"] = "https://app.example.com/hook"
		info, err := e.LinkTokenInfo(newLinkToken(t, body))
		if err != nil {
			t.Fatal(err)
		}
		if info.RedirectURI != "https://app.example.com/oauth" || info.Webhook != "https://app.example.com/hook" ||
			info.UpdateMode || info.InstitutionID != "" || info.ClientName == "" ||
			!info.Expiration.Equal(clock.Now().Add(plaidemu.LinkTokenLifetime)) {
			t.Errorf("info = %+v", info)
		}
	})
	t.Run("OKUpdateMode", func(t *testing.T) {
		accessToken, _ := MustCreateItem(t, e, "ins_109511")
		body := linkTokenBody()
		delete(body, "products")
		body["access_token"] = accessToken
		info, err := e.LinkTokenInfo(newLinkToken(t, body))
		if err != nil {
			t.Fatal(err)
		}
		if !info.UpdateMode || info.InstitutionID != "ins_109511" || len(info.AccountIDs) == 0 {
			t.Errorf("info = %+v, want update mode at ins_109511 with the Item's accounts", info)
		}
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		_, err := e.LinkTokenInfo("link-sandbox-nope")
		WantErrorCode(t, err, "INVALID_LINK_TOKEN")
	})
	t.Run("ErrExpired", func(t *testing.T) {
		linkToken := newLinkToken(t, linkTokenBody())
		clock.Add(4 * time.Hour)
		_, err := e.LinkTokenInfo(linkToken)
		WantErrorCode(t, err, "INVALID_LINK_TOKEN")
	})
	t.Run("ExpireLinkToken", func(t *testing.T) {
		linkToken := newLinkToken(t, linkTokenBody())
		if err := e.ExpireLinkToken(linkToken); err != nil {
			t.Fatal(err)
		}
		_, err := e.LinkTokenInfo(linkToken)
		WantErrorCode(t, err, "INVALID_LINK_TOKEN")
		WantErrorCode(t, e.ExpireLinkToken("link-sandbox-nope"), "INVALID_LINK_TOKEN")
	})
}

// TestEmulator_LinkTokenCreate_ClientName: Plaid documents client_name as
// at most 30 characters but takes longer ones (Link then shows "This
// Application"), so the emulator takes any non-empty name and keeps it
// whole; shortening it for display is the Link page's business.
func TestEmulator_LinkTokenCreate_ClientName(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	for _, tt := range []struct {
		name, clientName string
	}{
		{"Short", "Acme"},
		{"Thirty", strings.Repeat("x", 30)},
		{"ThirtyOne", strings.Repeat("x", 31)},
		{"ThirtyRunesSixtyBytes", strings.Repeat("é", 30)},
		{"Long", "The Very Long Name Of A Personal Finance Application"},
		{"VeryLong", strings.Repeat("n", 1000)},
		// Sent escaped (\", \\, \u003c...): decoded as JSON, not taken raw.
		{"Escaped", `Ac"me\ <b>&amp;</b>`},
		{"Unicode", "日本語 Bank"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := linkTokenBody()
			body["client_name"] = tt.clientName
			info, err := e.LinkTokenInfo(MustCreateLinkToken(t, e, body))
			if err != nil {
				t.Fatal(err)
			}
			if info.ClientName != tt.clientName {
				t.Errorf("client_name = %q, want %q kept whole", info.ClientName, tt.clientName)
			}
		})
	}
}

// TestEmulator_LinkTokenCreate_RawStrings: strings read from the raw body
// decode as encoding/json decodes them, escapes and invalid UTF-8 (each
// bad byte becomes U+FFFD) included.
func TestEmulator_LinkTokenCreate_RawStrings(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	for _, tt := range []struct {
		name, raw, want string
	}{
		{"Plain", `"Acme"`, "Acme"},
		{"Escapes", `"A\u0063me\t\"1\""`, "Acme\t\"1\""},
		{"InvalidUTF8", "\"Ac\xffme\"", "Ac\ufffdme"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"client_name":` + tt.raw + `,"language":"en","country_codes":["US"],"user":{"client_user_id":"u"},"products":["auth"]}`
			r := Post(t, e, "/link/token/create", body)
			WantOK(t, r)
			info, err := e.LinkTokenInfo(r.Str("link_token"))
			if err != nil {
				t.Fatal(err)
			}
			if info.ClientName != tt.want {
				t.Errorf("client_name = %q, want %q", info.ClientName, tt.want)
			}
		})
	}
}
