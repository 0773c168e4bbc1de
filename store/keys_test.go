package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/store"
)

// A key whose plain bytes are printable, so that a leak in any encoding of
// it is easy to search for.
var (
	textKey    = []byte("0123456789abcdefghijklmnopqrstuv")
	textKeyB64 = base64.StdEncoding.EncodeToString(textKey)
	shortKey   = base64.StdEncoding.EncodeToString([]byte("only-sixteen-byt"))
)

// leaks reports the first piece of key material found in s.
func leaks(s string) (string, bool) {
	for _, secret := range []string{textKeyB64, strings.TrimRight(textKeyB64, "="), string(textKey), fmt.Sprint(textKey), shortKey, key1, key2} {
		for i := 0; i+8 <= len(secret); i++ {
			if piece := secret[i : i+8]; strings.Contains(s, piece) {
				return piece, true
			}
		}
	}
	return "", false
}

func TestParseMasterKeys(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		current string
		ids     []string
	}{
		{"One", "k1:" + key1, "k1", []string{"k1"}},
		{"LastIsCurrent", "k2:" + key2 + ",k1:" + key1, "k1", []string{"k1", "k2"}},
		{"Spaces", " k1:" + key1 + " , k2:" + key2 + "\n", "k2", []string{"k1", "k2"}},
		{"NoPadding", "k1:" + strings.TrimRight(textKeyB64, "="), "k1", []string{"k1"}},
		{"IDCharacters", "2026-01.key_A:" + key1, "2026-01.key_A", []string{"2026-01.key_A"}},
	} {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			k, err := store.ParseMasterKeys(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if k.Current != tt.current || !slices.Equal(k.KeyIDs(), tt.ids) {
				t.Fatalf("got %v, want current %q of %q", k, tt.current, tt.ids)
			}
		})
	}

	for _, tt := range []struct {
		name string
		in   string
	}{
		{"Empty", ""},
		{"Blank", "  \n"},
		{"NoKeyID", ":" + textKeyB64},
		{"NoColon", textKeyB64},
		{"NotBase64", "k1:" + textKeyB64[:20] + "!!!!"},
		{"Short", "k1:" + shortKey},
		{"Long", "k1:" + base64.StdEncoding.EncodeToString(append(bytes.Clone(textKey), 'x'))},
		{"BadKeyID", "k 1:" + textKeyB64},
		{"KeyAsKeyID", textKeyB64 + ":" + textKeyB64},
		{"DuplicateKeyID", "k1:" + key1 + ",k1:" + textKeyB64},
		{"EmptyEntry", "k1:" + key1 + ",,k2:" + textKeyB64},
		{"TrailingComma", "k1:" + textKeyB64 + ","},
	} {
		t.Run("ErrInvalid/"+tt.name, func(t *testing.T) {
			_, err := store.ParseMasterKeys(tt.in)
			wantField(t, err, "LINKD_MASTER_KEYS")
			if piece, ok := leaks(err.Error()); ok {
				t.Fatalf("error %q echoes key material %q", err, piece)
			}
		})
	}
}

// A Keyring prints and logs its key ids, never its keys.
func TestKeyring_String(t *testing.T) {
	k := MustParseKeys(t, "old:"+key1+",new:"+textKeyB64)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("keys", "keyring", k)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("keys", "keyring", k)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%v", &k), buf.String()} {
		if piece, ok := leaks(s); ok {
			t.Fatalf("%q shows key material %q", s, piece)
		}
		if !strings.Contains(s, "new") || !strings.Contains(s, "old") {
			t.Fatalf("%q does not name the key ids", s)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	ctx := context.Background()

	// A missing file is created with one random key, and read back after.
	t.Run("Create", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "secrets", "master.key")
		k, err := store.LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(k.KeyIDs()) != 1 || k.Current != k.KeyIDs()[0] {
			t.Fatalf("keyring = %v, want one current key", k)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("key file mode = %04o, want 0600", perm)
		}
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.ParseMasterKeys(string(text)); err != nil {
			t.Fatalf("key file does not parse as LINKD_MASTER_KEYS: %v", err)
		}
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("key directory holds %d files, want the key file only", len(entries))
		}

		// The same key comes back: what it sealed, it opens.
		dbPath := filepath.Join(dir, "linkd.db")
		db := MustOpenStoreAt(t, dbPath, k)
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		db.Close()
		again, err := store.LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if again.Current != k.Current {
			t.Fatalf("reloaded current key %q, want %q", again.Current, k.Current)
		}
		db = MustOpenStoreAt(t, dbPath, again)
		if tok, err := db.AccessToken(ctx, "item-1"); err != nil {
			t.Fatal(err)
		} else if tok != accessToken("item-1") {
			t.Fatal("access token does not round-trip the key file")
		}
	})

	t.Run("Existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(path, []byte("a:"+key1+",\nb:"+key2+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := store.LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if k.Current != "b" || !slices.Equal(k.KeyIDs(), []string{"a", "b"}) {
			t.Fatalf("keyring = %v, want a and b, b current", k)
		}
	})

	t.Run("ErrOpenToOthers", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o602} {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte("k1:"+textKeyB64+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := store.LoadOrCreateKeyFile(path)
			wantCode(t, err, linkd.EINVALID)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(path, []byte("k1:"+shortKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := store.LoadOrCreateKeyFile(path)
		wantCode(t, err, linkd.EINVALID)
		if piece, ok := leaks(err.Error()); ok {
			t.Fatalf("error %q echoes key material %q", err, piece)
		}
	})

	t.Run("ErrNotAFile", func(t *testing.T) {
		_, err := store.LoadOrCreateKeyFile(t.TempDir())
		if err == nil {
			t.Fatal("loaded a directory as a key file")
		}
		var e *linkd.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want a *linkd.Error", err)
		}
	})
}
