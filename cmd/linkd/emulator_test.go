package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// MustStartEmulator starts `linkd emulator` on a free loopback port with
// the given environment and stops it at cleanup.
func MustStartEmulator(tb testing.TB, env ...string) (*EmulatorMain, *syncBuffer) {
	tb.Helper()
	vars := envMap(env)
	m := NewEmulatorMain()
	logs := &syncBuffer{}
	m.LogOutput = logs
	if err := m.ParseFlags([]string{"-addr", "127.0.0.1:0"}, func(k string) string { return vars[k] }); err != nil {
		tb.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatalf("Run: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return m, logs
}

// MustStartReplica starts linkd in real-Plaid mode against emu, as a replica
// in a deployment would be, with the given credentials.
func MustStartReplica(tb testing.TB, emu *EmulatorMain, clientID, secret string) *testServer {
	tb.Helper()
	dataDir := tb.TempDir()
	vars := map[string]string{"PLAID_CLIENT_ID": clientID, "PLAID_SECRET": secret, "PLAID_ENV": "sandbox", "LINKD_API_KEYS": "lk_replica"}
	m := NewMain()
	logs := &syncBuffer{}
	m.LogOutput = logs
	args := []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", dataDir,
		"-plaid-base-url", emu.URL(), "-link-url", emu.LinkURL()}
	if err := m.ParseFlags(args, func(k string) string { return vars[k] }); err != nil {
		tb.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		tb.Fatalf("Run: %v\nlogs:\n%s", err, logs.String())
	}
	ts := &testServer{Main: m, APIKey: "lk_replica", BaseURL: "http://" + m.HTTPAddr(), Logs: logs}
	tb.Cleanup(func() {
		if ts.conn != nil {
			ts.conn.Close()
		}
		if err := m.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return ts
}

func envMap(env []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return vars
}

// Two replicas share one `linkd emulator`: a link token from one opens the
// emulator's Link page, and a public token minted through one is exchanged
// through the other.
func TestEmulator_SharedByReplicas(t *testing.T) {
	const clientID, secret = "client-shared", "secret-shared-0123456789"
	emu, emuLogs := MustStartEmulator(t, "PLAID_CLIENT_ID="+clientID, "PLAID_SECRET="+secret)
	a := MustStartReplica(t, emu, clientID, secret)
	b := MustStartReplica(t, emu, clientID, secret)
	ca, cb := a.GRPC(t), b.GRPC(t)
	ctx := context.Background()

	tok, err := ca.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1"})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	if want := emu.LinkURL() + "?isWebview=true&token="; !strings.HasPrefix(tok.GetLinkToken().GetWebviewUrl(), want) {
		t.Errorf("webview_url = %q, want prefix %q", tok.GetLinkToken().GetWebviewUrl(), want)
	}
	resp, err := http.Get(tok.GetLinkToken().GetWebviewUrl())
	if err != nil {
		t.Fatalf("GET webview_url: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(page), "INVALID_LINK_TOKEN") {
		t.Errorf("Link page: HTTP %d, want 200 without INVALID_LINK_TOKEN:\n%.400s", resp.StatusCode, page)
	}

	pt, err := ca.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
	if err != nil {
		t.Fatalf("CreateSandboxPublicToken: %v", err)
	}
	item, err := cb.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "user-1"})
	if err != nil {
		t.Fatalf("ExchangePublicToken through the other replica: %v", err)
	}
	if item.GetItem().GetItemId() == "" {
		t.Errorf("ExchangePublicToken = %v, want an Item", item)
	}

	logs := emuLogs.String()
	if !strings.Contains(logs, "client_id="+clientID) || !strings.Contains(logs, emu.URL()) {
		t.Errorf("start message lacks client_id or URL:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Errorf("emulator logged its secret:\n%s", logs)
	}
}

// Without credentials the emulator accepts the documented defaults, and a
// replica with other credentials is refused by it.
func TestEmulator_DefaultCredentials(t *testing.T) {
	emu, _ := MustStartEmulator(t)
	ctx := context.Background()
	ok := MustStartReplica(t, emu, DefaultEmulatorClientID, DefaultEmulatorSecret).GRPC(t)
	if _, err := ok.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1"}); err != nil {
		t.Errorf("CreateLinkToken with the default credentials: %v", err)
	}
	bad := MustStartReplica(t, emu, DefaultEmulatorClientID, "wrong-secret").GRPC(t)
	_, err := bad.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1"})
	if code := plaidErrorInfo(status.Convert(err)).GetMetadata()["error_code"]; code != "INVALID_API_KEYS" {
		t.Errorf("CreateLinkToken with a wrong secret: %v, want Plaid's INVALID_API_KEYS", err)
	}
}

// `linkd emulator -log-level` (LINKD_LOG_LEVEL) sets its logger's level:
// debug brings back the line per successful request that info leaves out.
func TestEmulatorMain_LogLevel(t *testing.T) {
	for _, tt := range []struct {
		name      string
		args      []string
		env       string
		wantDebug bool
		wantErr   bool
	}{
		{name: "Default"},
		{name: "Flag", args: []string{"-log-level", "debug"}, wantDebug: true},
		{name: "Env", env: "debug", wantDebug: true},
		{name: "FlagOverEnv", args: []string{"-log-level", "warn"}, env: "debug"},
		{name: "ErrUnknown", args: []string{"-log-level", "verbose"}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewEmulatorMain()
			m.LogOutput = io.Discard
			args := append([]string{"-addr", "127.0.0.1:0"}, tt.args...)
			err := m.ParseFlags(args, func(k string) string {
				if k == "LINKD_LOG_LEVEL" {
					return tt.env
				}
				return ""
			})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "-log-level") {
					t.Fatalf("ParseFlags = %v, want an error naming -log-level", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := m.log.Enabled(context.Background(), slog.LevelDebug); got != tt.wantDebug {
				t.Errorf("debug enabled = %v, want %v", got, tt.wantDebug)
			}
		})
	}
}
