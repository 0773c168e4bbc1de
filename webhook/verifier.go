// Package webhook verifies Plaid's webhooks: the Plaid-Verification JWT
// against Plaid's key for its kid and against the raw body, as Plaid
// documents (ES256 only, iat at most 5 minutes old, request_body_sha256
// equal to the body's SHA-256).
//
// Anyone can POST to a webhook URL, so Verify is built to cost a forger
// more than it costs linkd, and above all so that forged traffic cannot
// stop genuine webhooks from being verified:
//
//   - Everything a token can be refused for without Plaid's key (shape,
//     encoding, alg, kid format, claims, iat freshness, the body's hash)
//     is checked before a key is looked up, so malformed and stale forgeries
//     never cause a key fetch.
//   - Keys Plaid vouched for are cached, so a delivery naming a known kid
//     never waits for a fetch and never competes with forgeries for one.
//     Each cached key is fetched again every Config.KeyRefresh (at most one
//     attempt a minute per kid, whoever triggers it) so that Plaid's
//     expired_at is learned; when that refetch fails the cached key is used.
//   - A kid Plaid disowns is remembered as unknown for
//     Config.UnknownKidTTL, in a bounded table (oldest dropped first), and
//     refused without asking again.
//   - Fetches for kids with no answer yet share a budget
//     (Config.UnknownKidFetches a minute); past it, such a delivery gets
//     EUNAVAILABLE, to which Plaid answers by retrying later. Concurrent
//     deliveries naming one kid share one fetch.
//
// What a forger can still do: make linkd ask Plaid for up to
// UnknownKidFetches made-up kids a minute (plus one refetch per known kid a
// minute, by naming known kids); make linkd check one ES256 signature per
// delivery that names a known kid and passes the cheap checks (a fraction
// of a millisecond, see BENCHMARKS.md; request rate limits belong in front
// of linkd); and, by keeping that budget
// spent with fresh made-up kids, delay the first use of a kid Plaid has just
// rotated to: those deliveries get EUNAVAILABLE and Plaid retries them, but
// a flood that lasts longer than Plaid's retries would lose them. Deliveries
// signed with kids linkd already knows are not affected. A forger who
// captured a genuine delivery can send it again within MaxAge; Verify
// accepts it again, and the caller must apply each Delivery.DeliveryID once.
// Refusals are logged at most once per cause every 10 seconds, with
// attacker-chosen values cut to 64 bytes, so a flood does not flood the log.
package webhook

import (
	"context"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/jwt"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxAge            = 5 * time.Minute
	DefaultMaxSkew           = time.Minute
	DefaultKeyRefresh        = time.Hour
	DefaultUnknownKidFetches = 6
	DefaultUnknownKidTTL     = 10 * time.Minute
	DefaultUnknownKids       = 4096
	// MaxKeyIDBytes bounds a kid; Plaid's are 36-character UUIDs.
	MaxKeyIDBytes = 128
)

// Reasons name why Verify refused a delivery, in the Reason of the
// *linkd.Error it returns, for logs and metrics.
const (
	ReasonMissing     = "WEBHOOK_JWT_MISSING"     // no Plaid-Verification header
	ReasonMalformed   = "WEBHOOK_JWT_MALFORMED"   // not a strictly encoded compact JWS of JSON objects with distinct members
	ReasonCrit        = "WEBHOOK_JWT_CRIT"        // a crit header member
	ReasonAlg         = "WEBHOOK_ALG"             // alg other than ES256
	ReasonKeyID       = "WEBHOOK_KID"             // kid missing, too long or with characters Plaid does not use
	ReasonIatMissing  = "WEBHOOK_IAT_MISSING"     // no iat, or not a NumericDate
	ReasonIatFuture   = "WEBHOOK_IAT_FUTURE"      // iat later than now plus MaxSkew
	ReasonIatStale    = "WEBHOOK_IAT_STALE"       // iat earlier than now minus MaxAge
	ReasonBodyHash    = "WEBHOOK_BODY_HASH"       // request_body_sha256 is not the body's SHA-256
	ReasonKeyUnknown  = "WEBHOOK_KEY_UNKNOWN"     // Plaid does not know the kid
	ReasonKeyMismatch = "WEBHOOK_KEY_MISMATCH"    // the key source answered with another kid's key
	ReasonKeyUnusable = "WEBHOOK_KEY_UNUSABLE"    // the key is not a P-256 ES256 key
	ReasonKeyExpired  = "WEBHOOK_KEY_EXPIRED"     // Plaid retired the key (expired_at has passed)
	ReasonSignature   = "WEBHOOK_SIGNATURE"       // the signature does not verify with the key
	ReasonKeyDeferred = "WEBHOOK_KEY_DEFERRED"    // EUNAVAILABLE: the fetch budget for new kids is spent
	ReasonKeyFetch    = "WEBHOOK_KEY_UNAVAILABLE" // EUNAVAILABLE: the key source failed
)

// KeySource fetches Plaid's webhook verification key by kid;
// linkd.Plaid.WebhookVerificationKey is one. It returns EINVALID or
// ENOTFOUND when Plaid does not know the kid, and any other error when
// Plaid cannot answer now.
type KeySource func(ctx context.Context, kid string) (linkd.WebhookKey, error)

// Config configures a Verifier. Keys is required.
type Config struct {
	// Keys fetches a key by kid.
	Keys KeySource
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// MaxAge is how old iat may be; DefaultMaxAge, Plaid's advice, if 0.
	MaxAge time.Duration
	// MaxSkew is how far in the future iat may be, for clock skew;
	// DefaultMaxSkew if 0.
	MaxSkew time.Duration
	// KeyRefresh is how long a fetched key is used before it is fetched
	// again, which is how a retirement (expired_at) is learned;
	// DefaultKeyRefresh if 0.
	KeyRefresh time.Duration
	// UnknownKidFetches is how many fetches a minute, and at once, may go
	// to kids linkd has no answer for; DefaultUnknownKidFetches if 0.
	UnknownKidFetches int
	// UnknownKidTTL is how long a kid Plaid disowned is refused without
	// asking Plaid again; DefaultUnknownKidTTL if 0.
	UnknownKidTTL time.Duration
	// UnknownKids bounds how many disowned kids are remembered;
	// DefaultUnknownKids if 0.
	UnknownKids int
	// Logger receives refusals (rate-limited per reason) and failed key
	// fetches; nil discards.
	Logger *slog.Logger
}

// Delivery is a verified webhook delivery.
type Delivery struct {
	// KeyID is the kid of the key that signed it.
	KeyID string
	// DeliveryID is the hex SHA-256 of the JWT's signed part (header and
	// claims as sent) and its signature in canonical form (r, and the
	// lower of s and n−s). Apply each DeliveryID once: Verify accepts the
	// same JWT again until ExpiresAt. ECDSA signatures are malleable (s
	// and n−s both verify), so the signature as sent would let a replayer
	// send a copy with another ID; leaving the signature out would give
	// two genuine deliveries of one body in one second (iat has seconds)
	// one ID, and drop the second. Plaid signs with a random nonce, so
	// each delivery it signs has its own r.
	DeliveryID string
	// IssuedAt is the JWT's iat, in UTC.
	IssuedAt time.Time
	// ExpiresAt is IssuedAt plus MaxAge: from then on Verify refuses this
	// JWT, so a record of DeliveryID may be forgotten.
	ExpiresAt time.Time
}

// Verifier verifies Plaid webhook deliveries and caches Plaid's keys. It
// is safe for concurrent use.
type Verifier struct {
	cfg  Config
	log  *slog.Logger
	warn limiter

	mu      sync.Mutex
	keys    map[string]*cachedKey // only keys Plaid vouched for under their own kid
	unknown *unknownKids
	flights map[string]*flight
	budget  bucket
}

// NewVerifier returns a Verifier, or an error naming the setting that is
// missing or wrong.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Keys == nil {
		return nil, errors.New("webhook: a key source is required")
	}
	if cfg.MaxAge < 0 || cfg.MaxSkew < 0 || cfg.KeyRefresh < 0 || cfg.UnknownKidFetches < 0 || cfg.UnknownKidTTL < 0 || cfg.UnknownKids < 0 {
		return nil, errors.New("webhook: durations and limits must not be negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.KeyRefresh == 0 {
		cfg.KeyRefresh = DefaultKeyRefresh
	}
	if cfg.UnknownKidFetches == 0 {
		cfg.UnknownKidFetches = DefaultUnknownKidFetches
	}
	if cfg.UnknownKidTTL == 0 {
		cfg.UnknownKidTTL = DefaultUnknownKidTTL
	}
	if cfg.UnknownKids == 0 {
		cfg.UnknownKids = DefaultUnknownKids
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{
		cfg:     cfg,
		log:     log,
		warn:    limiter{every: warnEvery},
		keys:    map[string]*cachedKey{},
		unknown: newUnknownKids(cfg.UnknownKids),
		flights: map[string]*flight{},
		budget:  bucket{perMinute: float64(cfg.UnknownKidFetches)},
	}, nil
}

// claims are the JWT claims Plaid sets.
type claims struct {
	Iat               json.Number `json:"iat"`
	RequestBodySHA256 string      `json:"request_body_sha256"`
}

// Verify checks a delivery: header is its Plaid-Verification header, body
// its raw body. It returns the Delivery, or a *linkd.Error: EUNAUTHORIZED
// for anything forged, stale, tampered or signed by a key Plaid disowns or
// retired; EUNAVAILABLE when the kid's key cannot be fetched now (Plaid
// retries on it). The error's Reason is one of the Reason constants; its
// Message never quotes the request.
func (v *Verifier) Verify(ctx context.Context, header string, body []byte) (Delivery, error) {
	d, kid, err := v.verify(ctx, header, body)
	if err != nil {
		v.logRefusal(ctx, err, kid)
	}
	return d, err
}

// verify is Verify without the logging; it also returns the header's kid
// once it is known, for the log.
func (v *Verifier) verify(ctx context.Context, header string, body []byte) (Delivery, string, error) {
	// The checks that need no key come first: no forgery that fails them
	// costs a key fetch.
	if header == "" {
		return Delivery{}, "", refused(ReasonMissing, "no Plaid-Verification header")
	}
	t, err := jwt.ParseCompact(header)
	if errors.Is(err, jwt.ErrCrit) {
		return Delivery{}, "", refused(ReasonCrit, "critical header extensions are not supported")
	} else if err != nil {
		return Delivery{}, "", refused(ReasonMalformed, err.Error())
	}
	kid := t.Header.Kid
	if t.Header.Alg != jwt.ES256 {
		return Delivery{}, kid, refused(ReasonAlg, "alg is not ES256")
	}
	if !wellFormedKeyID(kid) {
		return Delivery{}, kid, refused(ReasonKeyID, "kid is missing or malformed")
	}
	if len(t.Signature) != 64 {
		return Delivery{}, kid, refused(ReasonMalformed, "signature is not 64 bytes")
	}
	var c claims
	if err := t.DecodeClaims(&c); err != nil {
		return Delivery{}, kid, refused(ReasonMalformed, err.Error())
	}
	iat, err := jwt.NumericDate(c.Iat)
	if c.Iat == "" || err != nil {
		return Delivery{}, kid, refused(ReasonIatMissing, "iat is missing or not a NumericDate")
	}
	now := v.cfg.Now()
	if iat.Sub(now) > v.cfg.MaxSkew {
		return Delivery{}, kid, refused(ReasonIatFuture, "iat is in the future")
	}
	if now.Sub(iat) > v.cfg.MaxAge {
		return Delivery{}, kid, refused(ReasonIatStale, "iat is older than "+v.cfg.MaxAge.String())
	}
	sum := sha256.Sum256(body)
	want, err := hex.DecodeString(c.RequestBodySHA256)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return Delivery{}, kid, refused(ReasonBodyHash, "request_body_sha256 does not match the body")
	}

	key, err := v.keyFor(ctx, kid)
	if err != nil {
		return Delivery{}, kid, err
	}
	if err := checkKey(key, kid, v.cfg.Now()); err != nil {
		return Delivery{}, kid, err
	}
	if !jwt.VerifyES256(key.Key, t.SigningInput, t.Signature) {
		return Delivery{}, kid, refused(ReasonSignature, "signature does not verify")
	}
	return Delivery{
		KeyID:      kid,
		DeliveryID: deliveryID(t.SigningInput, t.Signature),
		IssuedAt:   iat.UTC(),
		ExpiresAt:  iat.Add(v.cfg.MaxAge).UTC(),
	}, kid, nil
}

// checkKey refuses a key that is not kid's, not a P-256 ES256 key, or
// retired by now.
func checkKey(k linkd.WebhookKey, kid string, now time.Time) error {
	if k.KeyID != kid {
		return refused(ReasonKeyMismatch, "the key source answered with another kid's key")
	}
	if k.Key == nil || k.Key.Curve != elliptic.P256() || (k.Alg != "" && k.Alg != jwt.ES256) {
		return refused(ReasonKeyUnusable, "the key is not an ES256 key")
	}
	if !k.ExpiredAt.IsZero() && !now.Before(k.ExpiredAt) {
		return refused(ReasonKeyExpired, "the key has expired")
	}
	return nil
}

// wellFormedKeyID reports whether kid could be one of Plaid's: 1 to
// MaxKeyIDBytes of [A-Za-z0-9_-].
func wellFormedKeyID(kid string) bool {
	if kid == "" || len(kid) > MaxKeyIDBytes {
		return false
	}
	for i := 0; i < len(kid); i++ {
		switch c := kid[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// refused returns the EUNAUTHORIZED error for reason; msg must not quote
// the request.
func refused(reason, msg string) *linkd.Error {
	return &linkd.Error{Code: linkd.EUNAUTHORIZED, Reason: reason, Message: "webhook not verified: " + msg}
}

// unavailable returns the EUNAVAILABLE error for reason.
func unavailable(reason, msg string) *linkd.Error {
	return &linkd.Error{Code: linkd.EUNAVAILABLE, Reason: reason, Message: "webhook not verified yet: " + msg + "; retry later"}
}

// deliveryID is the hex SHA-256 of the signing input and the canonical
// (low-S) form of an ES256 signature that has verified (64 bytes, r||s).
func deliveryID(signingInput, sig []byte) string {
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	if half := new(big.Int).Rsh(n, 1); s.Cmp(half) > 0 {
		s.Sub(n, s)
	}
	h := sha256.New()
	h.Write(signingInput)
	h.Write(sig[:32])
	h.Write(s.FillBytes(make([]byte, 32)))
	return hex.EncodeToString(h.Sum(nil))
}
