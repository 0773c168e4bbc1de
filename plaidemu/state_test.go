package plaidemu_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/linkd/linkd/plaidemu"
)

// MustStartEmulatorAt starts an emulator like MustStartEmulator, keeping
// its state at path.
func MustStartEmulatorAt(tb testing.TB, clock *Clock, path string) *plaidemu.Emulator {
	tb.Helper()
	e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret, Now: clock.Now, StatePath: path})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// wantItemsAfterRestart starts a fresh emulator on path, as after a kill
// (the first one is not closed), and fails unless each access token is a
// live Item there.
func wantItemsAfterRestart(t *testing.T, path string, accessTokens ...string) {
	t.Helper()
	e := MustStartEmulatorAt(t, NewClock(), path)
	for _, token := range accessTokens {
		WantOK(t, Post(t, e, "/item/get", map[string]any{"access_token": token}))
	}
}

func TestStart_StatePath(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		clock := NewClock()
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, clock, path)
		url, received := mustReceiver(t)
		r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}, "options": map[string]any{"webhook": url}})
		WantOK(t, r)
		r = Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")})
		WantOK(t, r)
		broken, brokenID := r.Str("access_token"), r.Str("item_id")
		WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": broken}))
		signed := received()
		if len(signed) != 1 {
			t.Fatalf("webhooks after reset_login = %v", signed)
		}
		removed, _ := MustCreateItem(t, e, "ins_109508")
		WantOK(t, Post(t, e, "/item/remove", map[string]any{"access_token": removed}))
		live, liveID := MustCreateItem(t, e, "ins_109508")
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("state file: %v, %v; want mode 0600", fi, err)
		}

		e = MustStartEmulatorAt(t, clock, path)
		post := func(path string, body any) Response { return Post(t, e, path, body) }
		// The webhook signed before the restart verifies with the key
		// served after it.
		verifyJWT(t, post, signed[0])
		r = post("/item/get", map[string]any{"access_token": live})
		WantOK(t, r)
		if got := r.Body["item"].(map[string]any)["item_id"]; got != liveID {
			t.Errorf("item_id = %v, want %s", got, liveID)
		}
		WantOK(t, post("/accounts/get", map[string]any{"access_token": live}))
		WantError(t, post("/accounts/get", map[string]any{"access_token": broken}), 400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED")
		WantError(t, post("/item/remove", map[string]any{"access_token": removed}), 400, "ITEM_ERROR", "ITEM_NOT_FOUND")
		WantOK(t, post("/sandbox/item/fire_webhook", map[string]any{"access_token": broken, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}))
		if hooks := received(); len(hooks) != 1 || hooks[0].body["item_id"] != brokenID {
			t.Fatalf("fired webhooks = %v", hooks)
		} else {
			verifyJWT(t, post, hooks[0])
		}
		WantOK(t, post("/item/remove", map[string]any{"access_token": live}))

		// A third start sees the removal made by the second.
		e.Close()
		e = MustStartEmulatorAt(t, clock, path)
		WantError(t, Post(t, e, "/item/get", map[string]any{"access_token": live}), 400, "ITEM_ERROR", "ITEM_NOT_FOUND")
		if tmps, _ := filepath.Glob(path + ".tmp*"); len(tmps) > 0 {
			t.Errorf("temporary files left: %v", tmps)
		}
	})

	t.Run("ErrDamaged", func(t *testing.T) {
		// Each is a state file Start must refuse with an error naming it.
		for name, content := range map[string]string{
			"empty":       "",
			"not JSON":    "{\"version\": 1, \"items\": [",
			"version":     `{"version": 3}`,
			"no key":      `{"version": 1, "items": []}`,
			"bad key":     `{"version": 1, "webhook_key": {"kid": "k", "pkcs8": "AAAA"}}`,
			"wrong types": `{"version": 1, "items": {"a": 1}}`,
		} {
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "emulator.json")
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret, StatePath: path})
				if err == nil {
					e.Close()
					t.Fatal("Start succeeded on a damaged state file")
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
			})
		}
	})

	t.Run("ErrDamagedItem", func(t *testing.T) {
		// A valid file whose Item names no known institution.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		MustCreateItem(t, e, "ins_109508")
		e.Close()
		raw, _ := os.ReadFile(path)
		os.WriteFile(path, []byte(strings.Replace(string(raw), "ins_109508", "ins_nope", 1)), 0o600)
		if _, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret, StatePath: path}); err == nil || !strings.Contains(err.Error(), "ins_nope") {
			t.Fatalf("Start = %v, want an error naming the institution", err)
		}
	})

	t.Run("ErrSaveFails", func(t *testing.T) {
		// A change the emulator cannot save is refused and undone, so
		// memory never holds an Item the file lacks.
		dir := filepath.Join(t.TempDir(), "state")
		os.Mkdir(dir, 0o700)
		path := filepath.Join(dir, "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		token, _ := MustCreateItem(t, e, "ins_109508")
		r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}})
		WantOK(t, r)
		publicToken := r.Str("public_token")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		WantError(t, Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": publicToken}), 500, "API_ERROR", "INTERNAL_SERVER_ERROR")
		WantError(t, Post(t, e, "/item/remove", map[string]any{"access_token": token}), 500, "API_ERROR", "INTERNAL_SERVER_ERROR")
		os.Mkdir(dir, 0o700)
		WantOK(t, Post(t, e, "/item/get", map[string]any{"access_token": token}))
		WantOK(t, Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": publicToken}))
	})

	t.Run("InFileWhenAnswered", func(t *testing.T) {
		// Each kind of change is in the file once answered, before any
		// sync or Close: a restart after a kill -9 (the kernel keeps
		// what was written) finds it.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		reset, _ := MustCreateItem(t, e, "ins_109508")
		removed, _ := MustCreateItem(t, e, "ins_109511")
		WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": reset}))
		WantOK(t, Post(t, e, "/item/remove", map[string]any{"access_token": removed}))
		created, _ := MustCreateItem(t, e, "ins_109512")
		// No Close, no sync: a fresh start reads the file as it is.
		again := MustStartEmulatorAt(t, NewClock(), path)
		WantOK(t, Post(t, again, "/item/get", map[string]any{"access_token": created}))
		WantError(t, Post(t, again, "/accounts/get", map[string]any{"access_token": reset}), 400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED")
		WantError(t, Post(t, again, "/item/get", map[string]any{"access_token": removed}), 400, "ITEM_ERROR", "ITEM_NOT_FOUND")
	})

	t.Run("ErrBackgroundSync", func(t *testing.T) {
		// A background sync that fails is not the answered change's
		// failure (it is in the file already); the next change rewrites
		// the file from memory, which holds both.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		plaidemu.FailStateSyncs(e, errors.New("injected EIO"))
		first, _ := MustCreateItem(t, e, "ins_109508")
		plaidemu.SyncState(e)
		before, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		second, _ := MustCreateItem(t, e, "ins_109508")
		if after, err := os.Stat(path); err != nil || os.SameFile(before, after) {
			t.Fatalf("state file %v, %v after a failed sync and a change: want it rewritten (a new file)", after, err)
		}
		wantItemsAfterRestart(t, path, first, second)
	})

	t.Run("Deleted", func(t *testing.T) {
		// A change after the file was deleted under the emulator writes
		// it anew, whole, before it is answered.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		first, _ := MustCreateItem(t, e, "ins_109508")
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		second, _ := MustCreateItem(t, e, "ins_109508")
		wantItemsAfterRestart(t, path, first, second)
	})

	t.Run("Moved", func(t *testing.T) {
		// A file moved away keeps taking records until the syncer sees
		// the path name another file (none here); the next change then
		// writes the file anew at the path, with every Item.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		first, _ := MustCreateItem(t, e, "ins_109508")
		if err := os.Rename(path, path+".aside"); err != nil {
			t.Fatal(err)
		}
		second, _ := MustCreateItem(t, e, "ins_109508")
		plaidemu.SyncState(e)
		third, _ := MustCreateItem(t, e, "ins_109508")
		wantItemsAfterRestart(t, path, first, second, third)
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Concurrent exchanges are each in the file when answered: a
		// restart knows every access token handed out.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		const n = 64
		tokens := make(chan string, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				token, _ := MustCreateItem(t, e, "ins_109508")
				tokens <- token
			})
		}
		wg.Wait()
		close(tokens)
		// No Close: the file as a killed emulator leaves it.
		e = MustStartEmulatorAt(t, NewClock(), path)
		for token := range tokens {
			WantOK(t, Post(t, e, "/item/get", map[string]any{"access_token": token}))
		}
	})

	t.Run("TornRecord", func(t *testing.T) {
		// A crash while a change was appended leaves part of its record,
		// never answered: the Items before it load, and the file is
		// whole again after the start.
		path, token := stateWithTail(t, `{"access_token":"access-sandbox-torn","item_id":"x`)
		e := MustStartEmulatorAt(t, NewClock(), path)
		WantOK(t, Post(t, e, "/item/get", map[string]any{"access_token": token}))
		WantError(t, Post(t, e, "/item/get", map[string]any{"access_token": "access-sandbox-torn"}), 400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN")
		raw, _ := os.ReadFile(path)
		if strings.Contains(string(raw), "torn") {
			t.Errorf("the torn record is still in the file:\n%s", raw)
		}
	})

	t.Run("ZeroFilledTail", func(t *testing.T) {
		// After a power loss the last records, appended but not yet
		// synced, may read back as zero bytes (or be cut short among
		// them): the Items before them load.
		path, token := stateWithTail(t, `{"access_token":"access-sandbox-lost",`+strings.Repeat("\x00", 300)+"\n"+strings.Repeat("\x00", 4096))
		e := MustStartEmulatorAt(t, NewClock(), path)
		WantOK(t, Post(t, e, "/item/get", map[string]any{"access_token": token}))
		e.Close()

		// A damaged record with whole ones after it is damage, not a
		// power loss's tail: the start refuses the file.
		raw, _ := os.ReadFile(path)
		lines := strings.SplitAfter(strings.TrimSuffix(string(raw), "\n"), "\n")
		damaged := strings.Join(lines[:len(lines)-1], "") + "{\"access_token\":\x00\x00}\n" + lines[len(lines)-1] + "\n"
		if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
			t.Fatal(err)
		}
		if e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret, StatePath: path}); err == nil {
			e.Close()
			t.Fatal("Start accepted a state file with a damaged record before a whole one")
		}
	})

	t.Run("Compacts", func(t *testing.T) {
		// Changes append a record each; once superseded records outnumber
		// the Items the file is rewritten, holding each Item once.
		path := filepath.Join(t.TempDir(), "emulator.json")
		e := MustStartEmulatorAt(t, NewClock(), path)
		token, _ := MustCreateItem(t, e, "ins_109508")
		size := func() int64 {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
		one := size()
		WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": token}))
		if grown := size(); grown <= one {
			t.Fatalf("file of %d bytes after a change, %d before: want a record appended", grown, one)
		}
		biggest := int64(0)
		for range 1100 {
			WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": token}))
			biggest = max(biggest, size())
		}
		if got := size(); got >= biggest/2 {
			t.Errorf("file of %d bytes after 1,100 changes to one Item (at most %d): want it rewritten", got, biggest)
		}
		e.Close()
		e = MustStartEmulatorAt(t, NewClock(), path)
		WantError(t, Post(t, e, "/accounts/get", map[string]any{"access_token": token}), 400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED")
	})

	t.Run("Version1", func(t *testing.T) {
		// A file in the first format (one document) still loads.
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		v1, _ := json.Marshal(map[string]any{
			"version":     1,
			"webhook_key": map[string]any{"kid": "k1", "pkcs8": der, "created_at": "2026-03-01T12:00:00Z"},
			"items": []map[string]any{{
				"access_token": "access-sandbox-v1", "item_id": "item-v1", "institution_id": "ins_109508",
				"account_ids": []string{}, "products": []string{"auth"}, "created_at": "2026-03-01T12:00:00Z",
			}},
		})
		path := filepath.Join(t.TempDir(), "emulator.json")
		if err := os.WriteFile(path, v1, 0o600); err != nil {
			t.Fatal(err)
		}
		e := MustStartEmulatorAt(t, NewClock(), path)
		r := Post(t, e, "/item/get", map[string]any{"access_token": "access-sandbox-v1"})
		WantOK(t, r)
		if got := r.Body["item"].(map[string]any)["item_id"]; got != "item-v1" {
			t.Errorf("item_id = %v, want item-v1", got)
		}
	})

	t.Run("ErrUnwritable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no-such-dir", "emulator.json")
		if e, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: testClientID, Secret: testSecret, StatePath: path}); err == nil {
			e.Close()
			t.Fatal("Start succeeded with a state path it cannot write")
		}
	})
}

// stateWithTail returns the path of a state file holding one Item, whose
// access token it also returns, followed by tail: what a crash or a power
// loss may leave after the last whole record.
func stateWithTail(t *testing.T, tail string) (path, token string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "emulator.json")
	e := MustStartEmulatorAt(t, NewClock(), path)
	token, _ = MustCreateItem(t, e, "ins_109508")
	e.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(tail); err != nil {
		t.Fatal(err)
	}
	return path, token
}
