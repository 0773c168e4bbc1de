// Package seal keeps access tokens secret at rest, whatever the backend:
// master keys (Keyring) read from LINKD_MASTER_KEYS or a key file, and a
// Sealer that encrypts tokens with AES-256-GCM bound to their item_id. Key
// material never appears in an error, a log line or a String.
package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/internal/fileutil"
)

// MasterKeySize is the length of a master key: AES-256.
const MasterKeySize = 32

// The environment variables ParseMasterKeys is meant for.
const (
	masterKeysVar = "LINKD_MASTER_KEYS"
	currentKeyVar = "LINKD_MASTER_KEY_CURRENT"
)

// maxKeyFileSize bounds a key file: hundreds of keys.
const maxKeyFileSize = 64 << 10

// maxKeyIDLen bounds a key id, which is written beside every sealed token.
const maxKeyIDLen = 64

// Keyring holds the master keys that seal access tokens. Current seals new
// tokens; every key opens the tokens it sealed, so a key can be rotated by
// adding a newer one as Current and keeping the old one until no token
// needs it. It formats and logs its key ids only, never key material.
type Keyring struct {
	// Current is the id of the key that seals new tokens.
	Current string
	keys    map[string][]byte
}

// ParseMasterKeys parses LINKD_MASTER_KEYS: comma-separated "kid:base64key"
// entries, each key 32 bytes in standard base64 (padding optional). current
// (LINKD_MASTER_KEY_CURRENT) names the key that seals new tokens; empty
// means the last entry. On failure it returns an EINVALID *linkd.Error
// naming LINKD_MASTER_KEYS and the entry's position, never any part of an
// entry, or naming LINKD_MASTER_KEY_CURRENT when current is not in the list.
func ParseMasterKeys(s, current string) (Keyring, error) {
	k, err := parseKeyring(s)
	if err != nil {
		return Keyring{}, &linkd.Error{Code: linkd.EINVALID, Field: masterKeysVar, Message: err.Error()}
	}
	return k.WithCurrent(current)
}

// WithCurrent returns the ring with kid as its current key, so that an
// operator can stage a new key on every replica before any seals with it.
// An empty kid (LINKD_MASTER_KEY_CURRENT unset) keeps the ring as it is.
// It returns an EINVALID *linkd.Error naming LINKD_MASTER_KEY_CURRENT when
// kid is not in the ring; the message does not repeat kid, which may be a
// key pasted in the wrong place.
func (k Keyring) WithCurrent(kid string) (Keyring, error) {
	kid = strings.TrimSpace(kid)
	if kid == "" {
		return k, nil
	}
	if _, ok := k.keys[kid]; !ok {
		return Keyring{}, linkd.InvalidField(currentKeyVar, "%s names no key of the keyring (known ids: %q)", currentKeyVar, k.KeyIDs())
	}
	k.Current = kid
	return k, nil
}

// parseKeyring parses the "kid:base64key,..." text. Its errors name entries
// by position only, so that they never echo a key.
func parseKeyring(s string) (Keyring, error) {
	k := Keyring{keys: make(map[string][]byte)}
	s = strings.TrimSpace(s)
	if s == "" {
		return Keyring{}, errors.New("no master key")
	}
	for i, entry := range strings.Split(s, ",") {
		n := i + 1
		kid, enc, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			return Keyring{}, fmt.Errorf("entry %d is not kid:base64key", n)
		}
		if !validKeyID(kid) {
			return Keyring{}, fmt.Errorf("entry %d: key id must be 1-%d of A-Z a-z 0-9 . _ -", n, maxKeyIDLen)
		}
		if _, dup := k.keys[kid]; dup {
			return Keyring{}, fmt.Errorf("entry %d: key id repeats an earlier entry", n)
		}
		key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(enc, "="))
		if err != nil {
			return Keyring{}, fmt.Errorf("entry %d: key is not standard base64", n)
		}
		if len(key) != MasterKeySize {
			return Keyring{}, fmt.Errorf("entry %d: key is %d bytes, want %d", n, len(key), MasterKeySize)
		}
		k.keys[kid] = key
		k.Current = kid
	}
	return k, nil
}

// validKeyID reports whether kid is a short run of A-Z a-z 0-9 . _ -.
func validKeyID(kid string) bool {
	if kid == "" || len(kid) > maxKeyIDLen {
		return false
	}
	for _, c := range []byte(kid) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// LoadOrCreateKeyFile reads a keyring from the file at path, in
// LINKD_MASTER_KEYS's format. When the file does not exist it creates it
// (and its directory, 0700) with mode 0600 and one random key under a random
// key id. It returns an EINVALID *linkd.Error when the file is readable or
// writable by group or others or does not parse, and an EINTERNAL one when
// it cannot be read or written.
func LoadOrCreateKeyFile(path string) (Keyring, error) {
	k, err := loadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := createKeyFile(path); err != nil && !errors.Is(err, fs.ErrExist) {
		return Keyring{}, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EINTERNAL, "cannot create master key file"), err)
	}
	// Read back what is on disk, which is another process's key if it won
	// the race to create the file.
	return loadKeyFile(path)
}

// loadKeyFile reads and parses a key file. Its error wraps fs.ErrNotExist
// when there is no file.
func loadKeyFile(path string) (Keyring, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Keyring{}, err
	} else if err != nil {
		return Keyring{}, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EINTERNAL, "cannot open master key file"), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Keyring{}, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EINTERNAL, "cannot stat master key file"), err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Keyring{}, linkd.Errorf(linkd.EINVALID, "master key file %s has mode %04o: it must not be open to group or others (chmod 600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Keyring{}, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EINTERNAL, "cannot read master key file"), err)
	}
	if len(b) > maxKeyFileSize {
		return Keyring{}, linkd.Errorf(linkd.EINVALID, "master key file %s is over %d bytes", path, maxKeyFileSize)
	}
	k, err := parseKeyring(string(b))
	clear(b)
	if err != nil {
		return Keyring{}, linkd.Errorf(linkd.EINVALID, "master key file %s: %v", path, err)
	}
	return k, nil
}

// createKeyFile writes a new key file with one random key. It fails with
// fs.ErrExist when the file appeared meanwhile.
func createKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	text, err := newKeyLine()
	if err != nil {
		return err
	}
	defer clear(text)
	// Link the new file into place: others never see a half-written key
	// file, and Link fails if the file appeared meanwhile.
	return fileutil.Install(path, text, os.Link)
}

// newKeyLine returns a key file line with a random key id and key.
func newKeyLine() ([]byte, error) {
	var id [8]byte
	key := make([]byte, MasterKeySize)
	defer clear(key)
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return []byte("k" + hex.EncodeToString(id[:]) + ":" + base64.StdEncoding.EncodeToString(key) + "\n"), nil
}

// KeyIDs returns the ids of the keys in the ring, sorted.
func (k Keyring) KeyIDs() []string {
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String implements fmt.Stringer with the key ids only.
func (k Keyring) String() string {
	return fmt.Sprintf("Keyring{Current: %q, KeyIDs: %q}", k.Current, k.KeyIDs())
}

// GoString implements fmt.GoStringer with the key ids only, for %#v.
func (k Keyring) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the key ids only.
func (k Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", k.Current), slog.Any("key_ids", k.KeyIDs()))
}

// AddKeyToFile adds a new random master key to the key file at path, as the
// current key, keeping the old ones so that records sealed with them stay
// readable; the file is replaced atomically. It returns the new keyring, an
// EINVALID *linkd.Error when the file is missing, open to others or does
// not parse, and an EINTERNAL one when it cannot be written.
func AddKeyToFile(path string) (Keyring, error) {
	old, err := loadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Keyring{}, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EINVALID, "no master key file at %s", path), err)
	} else if err != nil {
		return Keyring{}, err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return Keyring{}, internal("read key file", err)
	}
	defer clear(text)
	line, err := newKeyLine()
	if err != nil {
		return Keyring{}, internal("new key", err)
	}
	// The file has LINKD_MASTER_KEYS's format: the new key goes last, as
	// the current one.
	text = append(bytes.TrimSpace(text), ',')
	text = append(text, line...)
	if err := fileutil.Install(path, text, os.Rename); err != nil {
		return Keyring{}, internal("write key file", err)
	}
	k, err := loadKeyFile(path)
	if err == nil && k.Current == old.Current {
		err = internal("add key", errors.New("the new key is not current after writing"))
	}
	return k, err
}

// internal returns an EINTERNAL error with a generic message that keeps
// cause (from the file system, never holding key material) for the logs.
func internal(op string, cause error) error {
	return fmt.Errorf("%w: seal %s: %w", linkd.Errorf(linkd.EINTERNAL, "key file failure"), op, cause)
}
