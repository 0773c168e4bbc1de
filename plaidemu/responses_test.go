package plaidemu_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linkd/linkd/plaidemu"
)

var updateGolden = flag.Bool("update", false, "rewrite plaidemu/testdata/*.golden from the emulator's answers")

// TestEmulator_ResponseBytes pins the exact bytes of the emulator's answers
// (key order, nulls, empty arrays, number formatting), random ids masked:
// what a client decodes must not move when the encoding is made cheaper.
// testdata/responses.golden was written by the map-based encoder the typed
// one replaced; rewrite it (-update) only for a change of answers meant.
func TestEmulator_ResponseBytes(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)
	url, received := mustReceiver(t)
	var out strings.Builder
	mask := []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`"request_id":"[0-9A-Za-z]{15}"`), `"request_id":"<request_id>"`},
		{regexp.MustCompile(`(link|public|access)-sandbox-[0-9a-f-]{36}`), `$1-sandbox-<uuid>`},
		{regexp.MustCompile(`"[0-9A-Za-z]{37}"`), `"<id>"`},
	}
	record := func(name string, r Response) Response {
		t.Helper()
		raw := strings.NewReplacer(e.URL(), "<emulator>", url, "<receiver>").Replace(r.Raw)
		for _, m := range mask {
			raw = m.re.ReplaceAllString(raw, m.with)
		}
		fmt.Fprintf(&out, "== %s %d\n%s", name, r.Status, raw)
		return r
	}
	post := func(name, path string, body any) Response {
		t.Helper()
		return record(name, Post(t, e, path, body))
	}

	post("link/token/create", "/link/token/create", linkTokenBody())
	hosted := linkTokenBody()
	hosted["hosted_link"] = map[string]any{"completion_redirect_uri": "myapp://done"}
	post("link/token/create hosted", "/link/token/create", hosted)
	post("link/token/create bad language", "/link/token/create", map[string]any{"client_name": "x", "language": "xx", "country_codes": []string{"US"}, "user": map[string]any{"client_user_id": "u"}, "products": []string{"auth"}})
	post("link/token/create missing", "/link/token/create", map[string]any{})
	pt := post("sandbox/public_token/create", "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth", "transactions"}, "options": map[string]any{"webhook": url}}).Str("public_token")
	post("exchange missing", "/item/public_token/exchange", map[string]any{})
	post("exchange bad format", "/item/public_token/exchange", map[string]any{"public_token": "x"})
	token := post("exchange", "/item/public_token/exchange", map[string]any{"public_token": pt}).Str("access_token")
	post("exchange spent", "/item/public_token/exchange", map[string]any{"public_token": pt})
	post("accounts/get", "/accounts/get", map[string]any{"access_token": token})
	post("accounts/get unknown token", "/accounts/get", map[string]any{"access_token": "access-sandbox-nope"})
	post("item/get", "/item/get", map[string]any{"access_token": token})
	post("fire NEW_ACCOUNTS_AVAILABLE", "/sandbox/item/fire_webhook", map[string]any{"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"})
	if err := e.SetItemState(token, plaidemu.StatePendingExpiration, ""); err != nil {
		t.Fatal(err)
	}
	post("reset_login", "/sandbox/item/reset_login", map[string]any{"access_token": token})
	post("item/get login required, consent expiring", "/item/get", map[string]any{"access_token": token})
	post("accounts/get login required", "/accounts/get", map[string]any{"access_token": token})
	received()

	r := post("sandbox/public_token/create microdeposits", "/sandbox/public_token/create", map[string]any{"institution_id": plaidemu.MicrodepositsInstitutionID, "initial_products": []string{"auth"},
		"options": map[string]any{"override_username": plaidemu.MicrodepositsUsername, "override_password": plaidemu.MicrodepositsPassword}})
	micro := post("exchange microdeposits", "/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")}).Str("access_token")
	post("accounts/get microdeposits", "/accounts/get", map[string]any{"access_token": micro})
	plain, _ := MustCreateItem(t, e, "ins_109511")
	accounts := Post(t, e, "/accounts/get", map[string]any{"access_token": plain}).Body["accounts"].([]any)
	second := accounts[1].(map[string]any)["account_id"]
	post("accounts/get one account", "/accounts/get", map[string]any{"access_token": plain, "options": map[string]any{"account_ids": []any{second}}})
	post("accounts/get bad account", "/accounts/get", map[string]any{"access_token": plain, "options": map[string]any{"account_ids": []string{"nope"}}})
	post("item/remove", "/item/remove", map[string]any{"access_token": plain})
	post("accounts/get removed", "/accounts/get", map[string]any{"access_token": plain})

	golden := filepath.Join("testdata", "responses.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		gotLines, wantLines := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gotLines), len(wantLines)) {
			if gotLines[i] != wantLines[i] {
				t.Fatalf("answers differ from %s at line %d:\ngot  %s\nwant %s", golden, i+1, gotLines[i], wantLines[i])
			}
		}
		t.Fatalf("answers differ from %s in length: %d lines, want %d", golden, len(gotLines), len(wantLines))
	}
}
