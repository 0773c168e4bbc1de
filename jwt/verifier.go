// Package jwt verifies the JSON Web Tokens end users present to linkd: RS256
// and ES256 against a JWKS (a file, or a URL fetched and cached), HS256
// against a shared secret. It uses only the standard library. The algorithm
// comes from the configured key, never from the token alone: a token whose
// alg does not match the key it names is refused, so "none" and alg
// confusion (an HS256 token signed with an RSA public key's bytes) fail.
package jwt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/linkd/linkd"
)

// Algorithms linkd accepts.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	HS256 = "HS256"
)

// Defaults for the zero values of Config.
const (
	DefaultLeeway        = 30 * time.Second
	DefaultMinRefresh    = time.Minute
	DefaultMaxAge        = time.Hour
	MaxTokenBytes        = 8 << 10
	MinHS256SecretBytes  = 32
	maxSubjectBytes      = 128
	minRSAModulusBits    = 2048
	es256SignatureLength = 64
)

// Config configures a Verifier. At least one of JWKS and HS256Secret is
// required, and so are Issuer and Audience.
type Config struct {
	// JWKS is a JWKS file path, or an https URL (http only to a loopback
	// host) fetched on first use, again when a token names an unknown kid
	// (at most once per MinRefresh), and when older than MaxAge.
	JWKS string
	// HS256Secret is the shared HMAC secret, at least 32 bytes.
	HS256Secret []byte
	// Issuer must equal the iss claim.
	Issuer string
	// Audience must be the aud claim or one of its elements.
	Audience string
	// Leeway is the clock skew allowed for exp and nbf; DefaultLeeway if 0.
	Leeway time.Duration
	// MinRefresh is the least time between two JWKS fetches; DefaultMinRefresh if 0.
	MinRefresh time.Duration
	// MaxAge is how long a fetched JWKS is used before it is refetched; DefaultMaxAge if 0.
	MaxAge time.Duration
	// Logger receives failed JWKS fetches (which otherwise show only as
	// refused tokens); nil discards.
	Logger *slog.Logger
	// HTTPClient fetches a JWKS URL; a client with a 10 s timeout if nil.
	HTTPClient *http.Client
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Verifier verifies user tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	secret []byte
	keys   *keySource
}

var _ linkd.UserTokenVerifier = (*Verifier)(nil)

// New returns a Verifier, or an error naming the setting that is missing or
// wrong. A JWKS file is read and checked now; a JWKS URL on first use, so
// that linkd starts (and serves API-key callers) while the issuer is down.
func New(cfg Config) (*Verifier, error) {
	if cfg.JWKS == "" && len(cfg.HS256Secret) == 0 {
		return nil, errors.New("jwt: configure a JWKS or an HS256 secret")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt: an issuer and an audience are required")
	}
	if n := len(cfg.HS256Secret); n > 0 && n < MinHS256SecretBytes {
		return nil, fmt.Errorf("jwt: the HS256 secret must be at least %d bytes", MinHS256SecretBytes)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MinRefresh == 0 {
		cfg.MinRefresh = DefaultMinRefresh
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, secret: bytes.Clone(cfg.HS256Secret)}
	if cfg.JWKS != "" {
		ks, err := newKeySource(cfg)
		if err != nil {
			return nil, err
		}
		v.keys = ks
	}
	return v, nil
}

// Errors ParseCompact and DecodeClaims return. A malformed segment's error
// wraps both the segment's error (ErrHeader, ErrClaims, ErrSignature) and
// the fault's (ErrEncoding, ErrJSON). None quotes the token, so they may be
// logged and shown to whoever sent it.
var (
	ErrTooLong   = fmt.Errorf("jwt: longer than %d bytes", MaxTokenBytes)
	ErrSegments  = errors.New("jwt: malformed: not three dot-separated parts")
	ErrCrit      = errors.New("jwt: critical header extensions are not supported")
	ErrHeader    = errors.New("jwt: malformed header")
	ErrClaims    = errors.New("jwt: malformed claims")
	ErrSignature = errors.New("jwt: malformed signature encoding")
	ErrEncoding  = errors.New("not unpadded base64url in canonical form")
	ErrJSON      = errors.New("not one JSON object with distinct member names")
)

// Header is the part of a token's JOSE header linkd reads.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// Compact is a JWS in compact serialization, split, with its header and
// signature decoded. Nothing in it is verified.
type Compact struct {
	Header Header
	// SigningInput is the header and claims segments as sent, joined by a
	// dot: the bytes the signature covers.
	SigningInput []byte
	// Signature is the decoded third segment.
	Signature []byte
	claims    string
}

// ParseCompact splits token and decodes its header and signature, strictly:
// unpadded base64url with no stray bits (so one token has one spelling),
// a header that is one JSON object whose member names differ even ignoring
// case, and no crit member at all (linkd understands no extension). It
// returns ErrTooLong, ErrSegments, ErrHeader, ErrCrit or ErrSignature; the
// claims are decoded later, by DecodeClaims, when the caller wants them.
func ParseCompact(token string) (*Compact, error) {
	if len(token) > MaxTokenBytes {
		return nil, ErrTooLong
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrSegments
	}
	var h struct {
		Header
		// Crit is present when the member is, even as null or [].
		Crit json.RawMessage `json:"crit"`
	}
	if err := decodePart(parts[0], &h); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	if h.Crit != nil {
		return nil, ErrCrit
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, ErrEncoding)
	}
	return &Compact{
		Header:       h.Header,
		SigningInput: []byte(token[:len(parts[0])+1+len(parts[1])]),
		Signature:    sig,
		claims:       parts[1],
	}, nil
}

// DecodeClaims decodes the claims segment into v as ParseCompact decodes
// the header, with numbers as json.Number where v leaves the type open. It
// returns ErrClaims, wrapping ErrEncoding or ErrJSON.
func (c *Compact) DecodeClaims(v any) error {
	if err := decodePart(c.claims, v); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	return nil
}

// VerifyES256 reports whether sig is an ES256 signature (r||s, 32 bytes
// each) of signingInput by pub; false for a nil key or any other length.
func VerifyES256(pub *ecdsa.PublicKey, signingInput, sig []byte) bool {
	if pub == nil {
		return false
	}
	digest := sha256.Sum256(signingInput)
	return verifyES256Digest(pub, digest[:], sig)
}

// claims are the registered claims linkd checks.
type claims struct {
	Iss string       `json:"iss"`
	Sub string       `json:"sub"`
	Aud audience     `json:"aud"`
	Exp numericClaim `json:"exp"`
	Nbf numericClaim `json:"nbf"`
}

// numericClaim is a NumericDate claim as RFC 7519 has it: a JSON number.
// json.Number alone also takes a number in a string ("exp":"1700000000"),
// which other verifiers refuse.
type numericClaim json.Number

func (n *numericClaim) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		return errors.New("a NumericDate must be a JSON number")
	}
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil {
		return err
	}
	*n = numericClaim(num)
	return nil
}

// audience is the aud claim: one string or an array of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// maxEchoed bounds how much of a caller's value an error repeats: errors
// reach logs, and a caller must not be able to grow a log line at will.
const maxEchoed = 32

// clip returns s cut to maxEchoed bytes, marked when cut.
func clip(s string) string {
	if len(s) <= maxEchoed {
		return s
	}
	return s[:maxEchoed] + "..."
}

// rejected returns the EUNAUTHORIZED error for a token refused for reason.
func rejected(format string, args ...any) error {
	return linkd.Errorf(linkd.EUNAUTHORIZED, "user token not accepted: "+format, args...)
}

// VerifyUserToken implements linkd.UserTokenVerifier: it returns the sub
// claim of a token whose signature, alg, iss, aud, exp and nbf check out,
// EUNAUTHORIZED naming the first failed check otherwise, and EUNAVAILABLE
// when a JWKS URL cannot be fetched and no keys are cached.
func (v *Verifier) VerifyUserToken(ctx context.Context, token string) (string, error) {
	t, err := ParseCompact(token)
	if err != nil {
		return "", rejected("%s", strings.TrimPrefix(err.Error(), "jwt: "))
	}
	if err := v.checkSignature(ctx, t.Header, t.SigningInput, t.Signature); err != nil {
		return "", err
	}
	var c claims
	if err := t.DecodeClaims(&c); err != nil {
		return "", rejected("malformed claims")
	}
	if err := v.checkClaims(c); err != nil {
		return "", err
	}
	return c.Sub, nil
}

// checkSignature verifies sig over signed with the key the header's kid and
// alg select: the HS256 secret for HS256, a JWKS key whose own algorithm is
// alg for RS256 and ES256.
func (v *Verifier) checkSignature(ctx context.Context, h Header, signed, sig []byte) error {
	switch h.Alg {
	case HS256:
		if v.secret == nil {
			return rejected("alg %s is not configured", HS256)
		}
		mac := hmac.New(sha256.New, v.secret)
		mac.Write(signed)
		if !hmac.Equal(mac.Sum(nil), sig) {
			return rejected("bad signature")
		}
		return nil
	case RS256, ES256:
		if v.keys == nil {
			return rejected("alg %q is not configured", clip(h.Alg))
		}
		pub, err := v.keys.find(ctx, h.Kid, h.Alg)
		if err != nil {
			return err
		}
		digest := sha256.Sum256(signed)
		if !verifyDigest(pub, digest[:], sig) {
			return rejected("bad signature")
		}
		return nil
	default:
		return rejected("alg %q is not accepted", clip(h.Alg))
	}
}

// verifyDigest checks an RS256 (PKCS #1 v1.5) or ES256 (r||s) signature.
func verifyDigest(pub crypto.PublicKey, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
	case *ecdsa.PublicKey:
		return verifyES256Digest(k, digest, sig)
	}
	return false
}

// verifyES256Digest checks an ES256 signature (r||s) of a SHA-256 digest.
func verifyES256Digest(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	if len(sig) != es256SignatureLength {
		return false
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, digest, r, s)
}

// checkClaims checks iss, aud, exp (required), nbf (if present) and sub.
func (v *Verifier) checkClaims(c claims) error {
	now := v.cfg.Now()
	if c.Iss != v.cfg.Issuer {
		return rejected("wrong issuer")
	}
	found := false
	for _, a := range c.Aud {
		found = found || a == v.cfg.Audience
	}
	if !found {
		return rejected("wrong audience")
	}
	if c.Exp == "" {
		return rejected("no exp claim")
	}
	exp, err := NumericDate(json.Number(c.Exp))
	if err != nil {
		return rejected("malformed exp")
	}
	if now.After(exp.Add(v.cfg.Leeway)) {
		return rejected("expired")
	}
	if c.Nbf != "" {
		nbf, err := NumericDate(json.Number(c.Nbf))
		if err != nil {
			return rejected("malformed nbf")
		}
		if now.Add(v.cfg.Leeway).Before(nbf) {
			return rejected("not valid yet")
		}
	}
	if c.Sub == "" || len(c.Sub) > maxSubjectBytes {
		return rejected("sub must be 1 to %d bytes", maxSubjectBytes)
	}
	for _, r := range c.Sub {
		if !unicode.IsPrint(r) || r == '/' {
			return rejected("sub has a character that is not allowed in a client_user_id")
		}
	}
	return nil
}

// numericDate reads a JWT NumericDate: seconds since the epoch, possibly
// fractional.
func NumericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("not a NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// decodePart decodes one unpadded base64url JSON part of a token, refusing
// trailing data. It returns ErrEncoding or ErrJSON.
func decodePart(part string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(part)
	if err != nil {
		return ErrEncoding
	}
	if err := checkMembers(b); err != nil {
		return ErrJSON
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return ErrJSON
	}
	if dec.More() {
		return ErrJSON
	}
	return nil
}

// checkMembers refuses a JSON object whose member names repeat, also in
// another case: encoding/json matches names case-insensitively and keeps
// the last, so {"sub":"alice","SUB":"bob"} would read as bob, and a custom
// claim an identity provider lets users set could choose the user.
func checkMembers(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := t.(string)
		if !ok {
			return errors.New("member name is not a string")
		}
		folded := strings.ToLower(name)
		if seen[folded] {
			return fmt.Errorf("member %q appears more than once (ignoring case)", name)
		}
		seen[folded] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}
