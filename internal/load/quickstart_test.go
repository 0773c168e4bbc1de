package load

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

const (
	testClientID = "load-test-client"
	testSecret   = "load-test-secret"
)

// tinyQuickstart is a stand-in for the quickstart's Go backend with its two
// routes the driver calls, answering as it does: JSON from the emulator's
// answer, a Plaid error's status and {"error": ...} on failure. It talks
// to a real emulator over HTTP; forms counts the set_access_token calls
// that carried a public_token form field.
type tinyQuickstart struct {
	emu   *plaidemu.Emulator
	forms atomic.Int64
}

func (q *tinyQuickstart) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/api/create_link_token":
		q.plaid(w, r, "/link/token/create", map[string]any{
			"client_name": "Plaid Quickstart", "language": "en", "country_codes": []string{"US"},
			"user": map[string]any{"client_user_id": time.Now().String()}, "products": []string{"transactions"},
		}, "link_token")
	case "/api/set_access_token":
		if r.PostFormValue("public_token") != "" {
			q.forms.Add(1)
		}
		q.plaid(w, r, "/item/public_token/exchange", map[string]any{"public_token": r.PostFormValue("public_token")}, "item_id")
	default:
		http.NotFound(w, r)
	}
}

// plaid posts body to the emulator's path and answers with its field key.
func (q *tinyQuickstart) plaid(w http.ResponseWriter, r *http.Request, path string, body map[string]any, key string) {
	body["client_id"], body["secret"] = testClientID, testSecret
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, q.emu.URL()+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	w.Header().Set("Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		w.WriteHeader(resp.StatusCode)
		json.NewEncoder(w).Encode(map[string]any{"error": out})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{key: out[key]})
}

// MustStartQuickstart starts a real emulator and a tinyQuickstart in front
// of it, both on loopback, and closes them at cleanup.
func MustStartQuickstart(tb testing.TB) (*tinyQuickstart, *httptest.Server) {
	tb.Helper()
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { emu.Close() })
	q := &tinyQuickstart{emu: emu}
	srv := httptest.NewServer(q)
	tb.Cleanup(srv.Close)
	return q, srv
}

func quickstartConfig(q *tinyQuickstart, srv *httptest.Server) Config {
	return Config{
		Transport: Quickstart, QuickstartAddr: strings.TrimPrefix(srv.URL, "http://"),
		PlaidURL: q.emu.URL(), PlaidClientID: testClientID, PlaidSecret: testSecret,
		Concurrency: 3, MaxRequests: 12,
	}
}

func TestRun_Quickstart(t *testing.T) {
	q, srv := MustStartQuickstart(t)
	cfg := quickstartConfig(q, srv)
	cfg.CPUOf = map[string]int{"self": os.Getpid(), "gone": -1}
	results, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []struct{ scenario, rpc, plaidPath string }{
		{"create-link-token", "POST /api/create_link_token", "/link/token/create"},
		{"exchange", "POST /api/set_access_token", "/item/public_token/exchange"},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d (the quickstart's scenarios): %+v", len(results), len(want), results)
	}
	for i, w := range want {
		r := results[i]
		if r.Scenario != w.scenario || r.RPC != w.rpc || r.Transport != Quickstart {
			t.Errorf("result %d is %s (%s) over %s, want %s (%s) over quickstart", i, r.Scenario, r.RPC, r.Transport, w.scenario, w.rpc)
		}
		if r.OK != 12 || r.Requests != 12 {
			t.Errorf("%s: %d of %d calls succeeded, want 12 of 12; errors %v, first: %s", r.Scenario, r.OK, r.Requests, r.Errors, r.FirstError)
		}
		if _, ok := r.CPUPerCall["self"]; !ok || len(r.CPUPerCall) != 1 {
			t.Errorf("%s: CPU per call %v, want this process's alone", r.Scenario, r.CPUPerCall)
		}
		if got := q.emu.Calls(w.plaidPath); got != 12 {
			t.Errorf("emulator served %s %d times, want 12", w.plaidPath, got)
		}
	}
	if got := results[1].Minted; got != 12 {
		t.Errorf("exchange minted %d public tokens, want 12", got)
	}
	if got := q.emu.Calls("/sandbox/public_token/create"); got != 12 {
		t.Errorf("emulator minted %d public tokens, want 12 (at the emulator, not through the quickstart)", got)
	}
	if got := q.forms.Load(); got != 12 {
		t.Errorf("set_access_token got the public_token form field %d times, want 12", got)
	}
	var table strings.Builder
	if err := WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "POST /api/set_access_token") {
		t.Errorf("table lacks the quickstart's route:\n%s", table.String())
	}
}

func TestRun_Quickstart_ErrBadConfig(t *testing.T) {
	q, srv := MustStartQuickstart(t)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"NoRouteForScenario", func(c *Config) { c.Scenarios = []string{"create-link-token", "noop"} }, `not "noop"`},
		{"NoPlaidURL", func(c *Config) { c.PlaidURL = "" }, "Plaid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := quickstartConfig(q, srv)
			tt.edit(&cfg)
			if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if got := q.emu.Calls("/link/token/create"); got != 0 {
		t.Errorf("a refused run called the quickstart: %d link tokens created", got)
	}
}

// A Plaid error the quickstart passes on counts under the gRPC code of its
// HTTP status, as linkd's REST errors do.
func TestQuickstart_ExchangePublicToken_ErrInvalidArgument(t *testing.T) {
	q, srv := MustStartQuickstart(t)
	cfg := quickstartConfig(q, srv)
	api, closeAPI := newQuickstart(cfg.QuickstartAddr, cfg.PlaidURL, cfg.PlaidClientID, cfg.PlaidSecret, 1)
	defer closeAPI()
	_, err := api.ExchangePublicToken(context.Background(), &linkdv1.ExchangePublicTokenRequest{PublicToken: "public-sandbox-00000000-0000-0000-0000-000000000000"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("ExchangePublicToken of an unknown token: %v, want InvalidArgument from HTTP 400", err)
	}
	if q.forms.Load() != 1 {
		t.Errorf("the quickstart got %d public_token forms, want 1", q.forms.Load())
	}
}

func TestScenarioNames(t *testing.T) {
	if got, want := strings.Join(ScenarioNames(Quickstart), ","), "create-link-token,exchange"; got != want {
		t.Errorf("ScenarioNames(quickstart) = %s, want %s", got, want)
	}
	if got := len(ScenarioNames(GRPC)); got != len(Scenarios) {
		t.Errorf("ScenarioNames(grpc) has %d names, want all %d", got, len(Scenarios))
	}
}
