package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/service"
)

// WebhookPath is where linkd receives Plaid's webhooks: give Plaid
// <linkd's public URL>/v1/webhooks/plaid as the webhook URL.
const WebhookPath = "/v1/webhooks/plaid"

// MaxWebhookAge is how old a webhook's iat may be, as Plaid advises, so a
// captured webhook cannot be replayed later.
const MaxWebhookAge = 5 * time.Minute

// WebhookRoute returns the route that receives Plaid webhooks. It is not
// behind the API key (Plaid cannot send one): every body must carry a valid
// Plaid-Verification JWT, and anything unverified gets 401 and changes
// nothing.
func (s *Server) WebhookRoute() Route {
	return Route{Pattern: "POST " + WebhookPath, Handler: http.HandlerFunc(s.serveWebhook)}
}

// unknownKidPause is how often at most linkd asks Plaid for a kid it does
// not have, whatever the answer, so that forged webhooks with made-up kids
// cost Plaid (and linkd's rate limit there) one call a minute at most. A
// genuine new kid in that minute is refused; Plaid delivers it again later.
const unknownKidPause = time.Minute

// webhookKeys caches Plaid's webhook verification keys by kid. Keys do not
// change once issued (Plaid rotates by issuing new kids), so they are kept
// for the life of the process.
type webhookKeys struct {
	mu   sync.Mutex
	keys map[string]linkd.WebhookKey
	// lastFetch is when linkd last asked Plaid for a kid it did not have.
	lastFetch time.Time
}

// webhookKey returns the key for kid, from the cache or else from Plaid;
// EUNAUTHORIZED for a kid Plaid disowns (or, within unknownKidPause of
// such a miss, any unknown kid), and Plaid's error when it cannot answer.
func (s *Server) webhookKey(ctx context.Context, kid string) (linkd.WebhookKey, error) {
	s.hookKeys.mu.Lock()
	k, ok := s.hookKeys.keys[kid]
	paused := !ok && s.now().Sub(s.hookKeys.lastFetch) < unknownKidPause
	if !ok && !paused {
		// Claim the one fetch of this pause before calling, so concurrent
		// forged webhooks with made-up kids cannot all reach Plaid.
		s.hookKeys.lastFetch = s.now()
	}
	s.hookKeys.mu.Unlock()
	if ok {
		return k, nil
	} else if paused {
		// Not "unverified" (401) but "cannot verify now" (503): Plaid
		// retries, so a genuine new kid gets through after the pause.
		s.log.WarnContext(ctx, "webhook with an unknown kid during the key-fetch pause; answered retry-later", "kid", kid)
		return linkd.WebhookKey{}, linkd.Errorf(linkd.EUNAVAILABLE, "webhook key %q not known yet", kid)
	}
	k, err := s.webhookKeys(ctx, kid)
	if linkd.ErrorCode(err) == linkd.EINVALID {
		return linkd.WebhookKey{}, errWebhook("Plaid does not know kid %q: %v", kid, err)
	} else if err != nil {
		return linkd.WebhookKey{}, err
	}
	if k.KeyID != kid {
		return linkd.WebhookKey{}, linkd.Errorf(linkd.EUNAUTHORIZED, "Plaid answered with key %q for kid %q", k.KeyID, kid)
	}
	s.hookKeys.mu.Lock()
	if s.hookKeys.keys == nil {
		s.hookKeys.keys = map[string]linkd.WebhookKey{}
	}
	s.hookKeys.keys[kid] = k
	s.hookKeys.mu.Unlock()
	return k, nil
}

// errWebhook is the EUNAUTHORIZED error of an unverified webhook; why goes
// to the log only, so a forger learns nothing.
func errWebhook(format string, args ...any) error {
	return fmt.Errorf("%w: %s", linkd.Errorf(linkd.EUNAUTHORIZED, "webhook not verified"), fmt.Sprintf(format, args...))
}

// verifyWebhook checks a Plaid-Verification JWT against the raw body as
// Plaid documents: alg ES256 only, the key fetched by kid, an ES256
// signature over header.claims, iat no older than MaxWebhookAge (nor as
// far in the future), and request_body_sha256 equal to the body's SHA-256,
// compared in constant time. It returns the kid, or EUNAUTHORIZED; a
// failure to reach Plaid for the key keeps Plaid's error (EUNAVAILABLE,
// ...), for which Plaid retries.
func (s *Server) verifyWebhook(ctx context.Context, jwt string, body []byte) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errWebhook("Plaid-Verification is not a JWS compact serialization")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return "", errWebhook("JWT header: %v", err)
	}
	if header.Alg != "ES256" {
		return "", errWebhook("JWT alg %q is not ES256", header.Alg)
	}
	if header.Kid == "" || !plaidIDPattern.MatchString(header.Kid) {
		return "", errWebhook("JWT kid missing or malformed")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return "", errWebhook("JWT signature is not 64 bytes of base64url")
	}
	key, err := s.webhookKey(ctx, header.Kid)
	if err != nil {
		return "", err
	}
	if key.Alg != "" && key.Alg != "ES256" {
		return "", errWebhook("key %q is for %s", header.Kid, key.Alg)
	}
	now := s.now()
	if !key.ExpiredAt.IsZero() && !now.Before(key.ExpiredAt) {
		return "", errWebhook("key %q expired at %v", header.Kid, key.ExpiredAt)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key.Key, digest[:], r, ss) {
		return "", errWebhook("signature does not verify with key %q", header.Kid)
	}
	// The claims are trusted only now that the signature holds.
	var claims struct {
		Iat               *int64 `json:"iat"`
		RequestBodySHA256 string `json:"request_body_sha256"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil || claims.Iat == nil {
		return "", errWebhook("JWT claims lack iat")
	}
	iat := time.Unix(*claims.Iat, 0)
	if now.Sub(iat) > MaxWebhookAge || iat.Sub(now) > MaxWebhookAge {
		return "", errWebhook("iat %v is more than %v from now", iat, MaxWebhookAge)
	}
	sum := sha256.Sum256(body)
	want, err := hex.DecodeString(claims.RequestBodySHA256)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return "", errWebhook("body SHA-256 does not match request_body_sha256")
	}
	return header.Kid, nil
}

// decodeSegment decodes one base64url JWT segment as JSON into v.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// serveWebhook verifies a Plaid webhook, records it and applies it to its
// Item. Verification comes before anything is read or written.
func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeWebhookError(w, http.StatusRequestEntityTooLarge, "request body too large or unreadable")
		return
	}
	kid, err := s.verifyWebhook(ctx, r.Header.Get("Plaid-Verification"), body)
	s.countWebhook(body, err)
	if err != nil {
		if linkd.ErrorCode(err) == linkd.EUNAUTHORIZED {
			s.log.WarnContext(ctx, "webhook refused", "err", err)
			writeWebhookError(w, http.StatusUnauthorized, "webhook not verified")
		} else {
			s.log.ErrorContext(ctx, "webhook key unavailable", "err", err)
			writeWebhookError(w, http.StatusServiceUnavailable, "cannot verify the webhook now; retry")
		}
		return
	}
	// A verified JWT is good for MaxWebhookAge; each is applied once, so a
	// captured delivery replayed cannot undo a later change (an old ERROR
	// after LOGIN_REPAIRED). Plaid signs every delivery anew.
	sum := sha256.Sum256([]byte(r.Header.Get("Plaid-Verification")))
	_, _, err = s.svc.ApplyWebhook(ctx, service.Delivery{Body: body, KeyID: kid, ID: hex.EncodeToString(sum[:])})
	switch code := linkd.ErrorCode(err); {
	case code == linkd.EINVALID:
		writeWebhookError(w, http.StatusBadRequest, "body is not a JSON webhook")
		return
	case err != nil:
		s.log.ErrorContext(ctx, "webhook not recorded", "err", err)
		writeWebhookError(w, http.StatusServiceUnavailable, "webhook not recorded; retry")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}")
}

// Webhook verification results, for Config.OnWebhook.
const (
	WebhookVerified    = "verified"
	WebhookRefused     = "refused"     // 401: no valid signature
	WebhookUnavailable = "unavailable" // 503: Plaid's key could not be fetched
)

// countWebhook reports a delivery to OnWebhook: its webhook_type when
// verified ("unknown" otherwise: an unverified body is anyone's words, not
// a label) and its verification result.
func (s *Server) countWebhook(body []byte, verifyErr error) {
	if s.onWebhook == nil {
		return
	}
	typ, result := "unknown", WebhookVerified
	switch {
	case verifyErr == nil:
		var w struct {
			WebhookType string `json:"webhook_type"`
		}
		if json.Unmarshal(body, &w) == nil && webhookTypePattern.MatchString(w.WebhookType) {
			typ = w.WebhookType
		}
	case linkd.ErrorCode(verifyErr) == linkd.EUNAUTHORIZED:
		result = WebhookRefused
	default:
		result = WebhookUnavailable
	}
	s.onWebhook(typ, result)
}

// webhookTypePattern is what a webhook_type looks like (ITEM,
// TRANSACTIONS): anything else is counted as unknown.
var webhookTypePattern = regexp.MustCompile(`^[A-Z_]{1,32}$`)

// writeWebhookError answers like the gateway does: {"code", "message"}
// with the gRPC code that matches status.
func writeWebhookError(w http.ResponseWriter, status int, message string) {
	code := map[int]int{400: 3, 401: 16, 413: 3, 503: 14}[status]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"code": code, "message": message})
	w.Write(b)
}
