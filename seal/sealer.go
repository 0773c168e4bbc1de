package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// Sealer seals and opens access tokens with a Keyring's keys. It
// implements linkd.Sealer and is safe for concurrent use. It formats and
// logs its key ids only.
type Sealer struct {
	current string
	aeads   map[string]cipher.AEAD
}

var _ linkd.Sealer = (*Sealer)(nil)

// New prepares a GCM cipher per key of k. It returns an EINVALID
// *linkd.Error when the ring has no keys or its Current key is missing.
func New(k Keyring) (*Sealer, error) {
	if len(k.keys) == 0 {
		return nil, linkd.Errorf(linkd.EINVALID, "no master key: set %s or use a key file", masterKeysVar)
	}
	if _, ok := k.keys[k.Current]; !ok {
		return nil, linkd.Errorf(linkd.EINVALID, "current master key %q is not in the keyring", k.Current)
	}
	s := &Sealer{current: k.Current, aeads: make(map[string]cipher.AEAD, len(k.keys))}
	for id, key := range k.keys {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, linkd.Errorf(linkd.EINVALID, "master key %q: %v", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, linkd.Errorf(linkd.EINVALID, "master key %q: %v", id, err)
		}
		s.aeads[id] = aead
	}
	return s, nil
}

// CurrentKeyID is the id of the key new tokens are sealed with.
func (s *Sealer) CurrentKeyID() string { return s.current }

// KeyIDs returns the ids of the keys the Sealer opens, sorted.
func (s *Sealer) KeyIDs() []string {
	ids := make([]string, 0, len(s.aeads))
	for id := range s.aeads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String implements fmt.Stringer with the key ids only.
func (s *Sealer) String() string {
	return fmt.Sprintf("Sealer{Current: %q, KeyIDs: %q}", s.current, s.KeyIDs())
}

// GoString implements fmt.GoStringer with the key ids only, for %#v.
func (s *Sealer) GoString() string { return s.String() }

// LogValue implements slog.LogValuer with the key ids only.
func (s *Sealer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", s.current), slog.Any("key_ids", s.KeyIDs()))
}

// SealAccessToken encrypts token under the current key, bound to itemID.
// It returns an EINTERNAL *linkd.Error when randomness fails.
func (s *Sealer) SealAccessToken(itemID string, token linkd.AccessToken) (*storagev1.SealedAccessToken, error) {
	aead := s.aeads[s.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EINTERNAL, "internal error"), err)
	}
	return &storagev1.SealedAccessToken{
		KeyId:      s.current,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, []byte(token.Reveal()), []byte(itemID)),
	}, nil
}

// UnsealAccessToken decrypts a sealed token. It returns an EINTERNAL
// *linkd.Error naming the key id when the key is not in the keyring or the
// record does not authenticate (wrong key, or a record moved to another
// Item).
func (s *Sealer) UnsealAccessToken(itemID string, sealed *storagev1.SealedAccessToken) (linkd.AccessToken, error) {
	aead, ok := s.aeads[sealed.GetKeyId()]
	if !ok {
		return linkd.AccessToken{}, linkd.Errorf(linkd.EINTERNAL, "access token of item %q is sealed with master key %q, which is not in the keyring", itemID, sealed.GetKeyId())
	}
	if len(sealed.GetNonce()) != aead.NonceSize() {
		return linkd.AccessToken{}, linkd.Errorf(linkd.EINTERNAL, "access token of item %q has a malformed seal", itemID)
	}
	plain, err := aead.Open(nil, sealed.GetNonce(), sealed.GetCiphertext(), []byte(itemID))
	if err != nil {
		return linkd.AccessToken{}, linkd.Errorf(linkd.EINTERNAL, "access token of item %q does not open with master key %q", itemID, sealed.GetKeyId())
	}
	return linkd.NewAccessToken(string(plain)), nil
}
