package seal_test

import (
	"bytes"
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
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	"github.com/linkd/linkd/seal"
)

// Test master keys: fixed, so that a failure reproduces.
var (
	key1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x11}, 32))
	key2 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x22}, 32))
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
			k, err := seal.ParseMasterKeys(tt.in, "")
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
			_, err := seal.ParseMasterKeys(tt.in, "")
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
	// A missing file is created with one random key, and read back after.
	t.Run("Create", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "secrets", "master.key")
		k, err := seal.LoadOrCreateKeyFile(path)
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
		if _, err := seal.ParseMasterKeys(string(text), ""); err != nil {
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
		sealed, err := MustNewSealer(t, k).SealAccessToken("item-1", accessToken("item-1"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := seal.LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if again.Current != k.Current {
			t.Fatalf("reloaded current key %q, want %q", again.Current, k.Current)
		}
		if tok, err := MustNewSealer(t, again).UnsealAccessToken("item-1", sealed); err != nil {
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
		k, err := seal.LoadOrCreateKeyFile(path)
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
			_, err := seal.LoadOrCreateKeyFile(path)
			wantCode(t, err, linkd.EINVALID)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(path, []byte("k1:"+shortKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := seal.LoadOrCreateKeyFile(path)
		wantCode(t, err, linkd.EINVALID)
		if piece, ok := leaks(err.Error()); ok {
			t.Fatalf("error %q echoes key material %q", err, piece)
		}
	})

	t.Run("ErrNotAFile", func(t *testing.T) {
		_, err := seal.LoadOrCreateKeyFile(t.TempDir())
		if err == nil {
			t.Fatal("loaded a directory as a key file")
		}
		var e *linkd.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want a *linkd.Error", err)
		}
	})
}

// LINKD_MASTER_KEY_CURRENT picks the sealing key; without it the last entry
// seals.
func TestParseMasterKeys_Current(t *testing.T) {
	list := "k1:" + key1 + ",k2:" + key2
	for _, tt := range []struct {
		name, current, want string
	}{
		{"Default", "", "k2"},
		{"First", "k1", "k1"},
		{"Last", "k2", "k2"},
		{"Spaces", " k1 ", "k1"},
	} {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			k, err := seal.ParseMasterKeys(list, tt.current)
			if err != nil {
				t.Fatal(err)
			}
			if k.Current != tt.want {
				t.Fatalf("current = %q, want %q", k.Current, tt.want)
			}
			if s := MustNewSealer(t, k); s.CurrentKeyID() != tt.want {
				t.Fatalf("sealer current = %q, want %q", s.CurrentKeyID(), tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name, current string
	}{
		{"Unknown", "k3"},
		{"KeyAsID", textKeyB64},
	} {
		t.Run("ErrInvalid/"+tt.name, func(t *testing.T) {
			_, err := seal.ParseMasterKeys(list, tt.current)
			wantField(t, err, "LINKD_MASTER_KEY_CURRENT")
			if piece, ok := leaks(err.Error()); ok {
				t.Fatalf("error %q echoes key material %q", err, piece)
			}
		})
	}
	t.Run("ErrInvalid/BadList", func(t *testing.T) {
		_, err := seal.ParseMasterKeys("k1:"+shortKey, "k1")
		wantField(t, err, "LINKD_MASTER_KEYS")
	})
}

func TestSealer(t *testing.T) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := MustNewSealer(t, MustParseKeys(t, "k1:"+key1))
		sealed, err := s.SealAccessToken("item-1", accessToken("item-1"))
		if err != nil {
			t.Fatal(err)
		}
		if sealed.GetKeyId() != "k1" || bytes.Contains(sealed.GetCiphertext(), []byte(accessToken("item-1").Reveal())) {
			t.Fatalf("sealed = %v, want key k1 and no plain token", sealed)
		}
		if tok, err := s.UnsealAccessToken("item-1", sealed); err != nil || tok != accessToken("item-1") {
			t.Fatalf("unseal = %v, want the token", err)
		}
	})

	// Rotation: tokens sealed with the old key still open under a ring
	// whose current key is newer.
	t.Run("KeyRotation", func(t *testing.T) {
		old := MustNewSealer(t, MustParseKeys(t, "k1:"+key1))
		sealed, err := old.SealAccessToken("item-1", accessToken("item-1"))
		if err != nil {
			t.Fatal(err)
		}
		next := MustNewSealer(t, MustParseKeys(t, "k1:"+key1+",k2:"+key2))
		if tok, err := next.UnsealAccessToken("item-1", sealed); err != nil || tok != accessToken("item-1") {
			t.Fatalf("old token under the new ring: %v", err)
		}
		if resealed, err := next.SealAccessToken("item-1", accessToken("item-1")); err != nil || resealed.GetKeyId() != "k2" {
			t.Fatalf("new seal = %v, %v; want key k2", resealed, err)
		}
	})

	for _, tt := range []struct {
		name   string
		open   string
		itemID string
		mangle func(*storagev1.SealedAccessToken)
	}{
		{"ErrUnknownKey", "k2:" + key2, "item-1", nil},
		{"ErrWrongKey", "k1:" + key2, "item-1", nil},
		// The item_id is the seal's additional data: a sealed token copied
		// to another Item does not open.
		{"ErrMovedRecord", "k1:" + key1, "item-2", nil},
		{"ErrMalformed", "k1:" + key1, "item-1", func(s *storagev1.SealedAccessToken) { s.Nonce = s.Nonce[:3] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := MustNewSealer(t, MustParseKeys(t, "k1:"+key1)).SealAccessToken("item-1", accessToken("item-1"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.mangle != nil {
				tt.mangle(sealed)
			}
			_, err = MustNewSealer(t, MustParseKeys(t, tt.open)).UnsealAccessToken(tt.itemID, sealed)
			wantCode(t, err, linkd.EINTERNAL)
		})
	}

	t.Run("String", func(t *testing.T) {
		s := MustNewSealer(t, MustParseKeys(t, "old:"+key1+",new:"+textKeyB64))
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("sealer", "sealer", s)
		for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), buf.String()} {
			if piece, ok := leaks(out); ok {
				t.Fatalf("%q shows key material %q", out, piece)
			}
		}
	})

	t.Run("ErrNoKeys", func(t *testing.T) {
		_, err := seal.New(seal.Keyring{})
		wantCode(t, err, linkd.EINVALID)
	})
}

func TestAddKeyToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	first, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	next, err := seal.AddKeyToFile(path)
	if err != nil {
		t.Fatalf("AddKeyToFile: %v", err)
	}
	if next.Current == first.Current || len(next.KeyIDs()) != 2 {
		t.Errorf("after AddKeyToFile: current %q (was %q), ids %v", next.Current, first.Current, next.KeyIDs())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	reread, err := seal.LoadOrCreateKeyFile(path)
	if err != nil || reread.Current != next.Current {
		t.Errorf("reloaded current = %q, %v; want %q", reread.Current, err, next.Current)
	}
	if _, err := seal.AddKeyToFile(filepath.Join(t.TempDir(), "missing.key")); err == nil {
		t.Error("AddKeyToFile of a missing file succeeded")
	}
}

// MustParseKeys parses a LINKD_MASTER_KEYS value, the last key current.
func MustParseKeys(tb testing.TB, s string) seal.Keyring {
	tb.Helper()
	k, err := seal.ParseMasterKeys(s, "")
	if err != nil {
		tb.Fatalf("ParseMasterKeys: %v", err)
	}
	return k
}

// MustNewSealer returns a Sealer for k.
func MustNewSealer(tb testing.TB, k seal.Keyring) *seal.Sealer {
	tb.Helper()
	s, err := seal.New(k)
	if err != nil {
		tb.Fatalf("seal.New: %v", err)
	}
	return s
}

// accessToken returns a distinct, realistic access token for an Item.
func accessToken(itemID string) linkd.AccessToken {
	return linkd.NewAccessToken("access-sandbox-5f3c9b2e-" + itemID + "-7a1d-4c6e-9f0b-2d8e4a6c1b3f")
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := linkd.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// wantField fails the test unless err is EINVALID naming field.
func wantField(tb testing.TB, err error, field string) {
	tb.Helper()
	wantCode(tb, err, linkd.EINVALID)
	var e *linkd.Error
	if !errors.As(err, &e) || e.Field != field {
		tb.Fatalf("error field = %v, want %q (err: %v)", e, field, err)
	}
}
