package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkd/linkd/internal/linkctl"
	"github.com/linkd/linkd/store"
)

// linkctlRun runs linkctl against ts with its API key and returns the
// exit code and what it printed.
func (ts *testServer) linkctlRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{"LINKD_API_KEY": ts.APIKey, "LINKD_ADDR": ts.GRPCAddr(), "LINKD_ADMIN_ADDR": ts.AdminAddr()}
	var out, errOut bytes.Buffer
	code := linkctl.Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestLinkctl: every linkctl command against a real linkd: link tokens,
// Items, sessions, the conversion report, a checked backup and its
// offline restore.
func TestLinkctl(t *testing.T) {
	ts := MustStartServer(t)
	item := mustConnect(t, ts.GRPC(t), "ctl-user", "sess-ctl")
	id := item.GetItemId()

	mustJSON := func(args ...string) map[string]any {
		t.Helper()
		code, out, errOut := ts.linkctlRun(t, args...)
		if code != 0 {
			t.Fatalf("linkctl %v = %d: %s", args, code, errOut)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("linkctl %v printed %q: %v", args, out, err)
		}
		return v
	}
	t.Run("LinkTokenCreate", func(t *testing.T) {
		v := mustJSON("link-token", "create", "-user", "ctl-user")
		if tok, _ := v["link_token"].(map[string]any); !strings.HasPrefix(tok["link_token"].(string), "link-sandbox-") {
			t.Errorf("link-token create printed %v", v)
		}
	})
	t.Run("ItemsList", func(t *testing.T) {
		v := mustJSON("items", "list", "-user", "ctl-user", "-status", "GOOD")
		if items, _ := v["items"].([]any); len(items) != 1 || items[0].(map[string]any)["item_id"] != id {
			t.Errorf("items list printed %v", v)
		}
	})
	t.Run("ItemsGet", func(t *testing.T) {
		v := mustJSON("items", "get", id)
		if v["item"].(map[string]any)["client_user_id"] != "ctl-user" {
			t.Errorf("items get printed %v", v)
		}
	})
	t.Run("SessionsGet", func(t *testing.T) {
		v := mustJSON("sessions", "get", "sess-ctl")
		if v["session"] == nil {
			t.Errorf("sessions get printed %v", v)
		}
	})
	t.Run("Conversion", func(t *testing.T) {
		v := mustJSON("conversion", "-since", "24h")
		if v["sessions_converted"] == nil {
			t.Errorf("conversion printed %v", v)
		}
	})
	t.Run("ErrUsage", func(t *testing.T) {
		if code, _, _ := ts.linkctlRun(t, "items", "frobnicate"); code != 2 {
			t.Errorf("unknown command exits %d, want 2", code)
		}
		if code, _, _ := ts.linkctlRun(t, "items", "get", "no-such-item"); code != 1 {
			t.Errorf("a failed call exits %d, want 1", code)
		}
	})
	t.Run("BackupRestore", func(t *testing.T) {
		dir := t.TempDir()
		backup := filepath.Join(dir, "backup.db")
		if code, out, errOut := ts.linkctlRun(t, "backup", "-o", backup); code != 0 {
			t.Fatalf("backup = %d: %s %s", code, out, errOut)
		}
		if err := store.CheckFile(backup); err != nil {
			t.Fatal(err)
		}
		// Restoring over the live file is refused: linkd holds it.
		if code, _, _ := ts.linkctlRun(t, "restore", "-from", backup, "-db", ts.Config.DBPath); code != 1 {
			t.Errorf("restore over a running linkd exits %d, want 1", code)
		}
		// Into a fresh data directory it works, and linkd serves from it.
		restoreDir := t.TempDir()
		key, _ := os.ReadFile(filepath.Join(ts.Config.DataDir, "master.key"))
		os.WriteFile(filepath.Join(restoreDir, "master.key"), key, 0o600)
		if code, out, errOut := ts.linkctlRun(t, "restore", "-from", backup, "-db", filepath.Join(restoreDir, "linkd.db")); code != 0 {
			t.Fatalf("restore = %d: %s %s", code, out, errOut)
		}
		restored := mustStartServerIn(t, restoreDir, nil)
		if code, _, errOut := restored.linkctlRun(t, "items", "get", id); code != 0 {
			t.Errorf("items get on the restored linkd = %d: %s", code, errOut)
		}
		// A broken file is refused before anything is replaced.
		junk := filepath.Join(dir, "junk.db")
		os.WriteFile(junk, []byte("junk"), 0o600)
		if code, _, _ := ts.linkctlRun(t, "restore", "-from", junk, "-db", filepath.Join(t.TempDir(), "linkd.db")); code != 1 {
			t.Errorf("restore of junk exits %d, want 1", code)
		}
	})
	t.Run("ItemsRemove", func(t *testing.T) {
		mustJSON("items", "remove", id)
		if code, _, _ := ts.linkctlRun(t, "items", "get", id); code != 1 {
			t.Errorf("items get after remove exits %d, want 1", code)
		}
	})
}
