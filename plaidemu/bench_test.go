package plaidemu_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkd/linkd/plaidemu"
)

// BenchmarkEmulator measures the emulator's own CPU per request on the
// connected-link path, its handler called directly (no sockets), with a
// state file: what linkd's embedded emulator spends per call, net/http
// aside. ConnectedLink is the four calls of one link (link token, sandbox
// public token, exchange, accounts); the others repeat one call.
//
//	go test -run='^$' -bench=Emulator -benchmem ./plaidemu/
func BenchmarkEmulator(b *testing.B) {
	open := func(b *testing.B) func(path, body string) []byte {
		e, err := plaidemu.Open(plaidemu.Options{ClientID: testClientID, Secret: testSecret, StatePath: filepath.Join(b.TempDir(), "emulator.json")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		return func(path, body string) []byte {
			req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Plaid-Client-Id", testClientID)
			req.Header.Set("Plaid-Secret", testSecret)
			rec := &recorder{header: http.Header{}}
			e.ServeHTTP(rec, req)
			if rec.status != http.StatusOK {
				b.Fatalf("%s: %d %s", path, rec.status, rec.body.String())
			}
			return rec.body.Bytes()
		}
	}
	field := func(b *testing.B, raw []byte, name string) string {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
		return m[name].(string)
	}
	const (
		linkTokenBody = `{"client_name":"linkd","language":"en","country_codes":["US"],"user":{"client_user_id":"user-1"},"products":["auth"],"redirect_uri":"https://app.example.com/oauth"}`
		sandboxBody   = `{"institution_id":"ins_109508","initial_products":["auth"]}`
	)
	newItem := func(b *testing.B, serve func(path, body string) []byte) string {
		pt := field(b, serve("/sandbox/public_token/create", sandboxBody), "public_token")
		return field(b, serve("/item/public_token/exchange", `{"public_token":"`+pt+`"}`), "access_token")
	}
	b.Run("ConnectedLink", func(b *testing.B) {
		serve := open(b)
		b.ReportAllocs()
		for b.Loop() {
			serve("/link/token/create", linkTokenBody)
			token := newItem(b, serve)
			serve("/accounts/get", `{"access_token":"`+token+`"}`)
		}
	})
	b.Run("AccountsGet", func(b *testing.B) {
		serve := open(b)
		body := `{"access_token":"` + newItem(b, serve) + `"}`
		b.ReportAllocs()
		for b.Loop() {
			serve("/accounts/get", body)
		}
	})
	b.Run("LinkTokenCreate", func(b *testing.B) {
		serve := open(b)
		b.ReportAllocs()
		for b.Loop() {
			serve("/link/token/create", linkTokenBody)
		}
	})
	b.Run("SandboxPublicTokenCreate", func(b *testing.B) {
		serve := open(b)
		b.ReportAllocs()
		for b.Loop() {
			serve("/sandbox/public_token/create", sandboxBody)
		}
	})
}
