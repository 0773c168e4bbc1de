package plaidemu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// webhookKey is the ES256 key the emulator signs webhooks with, as Plaid
// does per environment. Verifiers fetch its public half by kid from
// /webhook_verification_key/get.
type webhookKey struct {
	id      string
	private *ecdsa.PrivateKey
	created time.Time
}

// newWebhookKey returns a fresh P-256 key. crypto/rand does not fail.
func newWebhookKey(now time.Time) *webhookKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("plaidemu: generating the webhook key: " + err.Error())
	}
	return &webhookKey{id: randomBase62(36), private: k, created: now}
}

// jwk is the key's public half as Plaid's JWK object.
func (k *webhookKey) jwk() map[string]any {
	pub, err := k.private.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic("plaidemu: encoding the webhook key: " + err.Error())
	}
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]any{
		"alg":        "ES256",
		"crv":        "P-256",
		"kid":        k.id,
		"kty":        "EC",
		"use":        "sig",
		"x":          enc(pub[1:33]),
		"y":          enc(pub[33:]),
		"created_at": k.created.Unix(),
		"expired_at": nil,
	}
}

// SignWebhook returns the Plaid-Verification JWT for body, signed with key
// at iat: header {alg ES256, kid, typ JWT}, claims {iat,
// request_body_sha256}. Tests use it to forge webhooks with keys of their
// own; the emulator uses it with its own key.
func SignWebhook(key *ecdsa.PrivateKey, kid string, iat time.Time, body []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": kid, "typ": "JWT"})
	sum := sha256.Sum256(body)
	claims, _ := json.Marshal(map[string]any{"iat": iat.Unix(), "request_body_sha256": hex.EncodeToString(sum[:])})
	signed := enc(header) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		panic("plaidemu: signing a webhook: " + err.Error())
	}
	sig := make([]byte, 64) // JWS ES256: R || S, 32 bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc(sig)
}

// webhook is one webhook waiting to be delivered.
type webhook struct {
	url  string
	body map[string]any
}

// queueItemWebhook queues a webhook about it, when it has a webhook URL:
// webhook_type typ (ITEM, AUTH, ...), webhook_code code, "error": null
// and the fields of extra (an ERROR webhook's error, account_id, ...).
// e.mu is held; deliver sends the queue once the lock is released.
func (e *Emulator) queueItemWebhook(it *item, typ, code string, extra map[string]any) {
	if it.webhook == "" {
		return
	}
	body := map[string]any{
		"webhook_type": typ,
		"webhook_code": code,
		"item_id":      it.id,
		"error":        nil,
		"environment":  env,
	}
	for k, v := range extra {
		body[k] = v
	}
	e.outbox = append(e.outbox, webhook{url: it.webhook, body: body})
}

// errorWebhookFields are the fields of an ERROR webhook carrying perr.
func errorWebhookFields(perr *Error) map[string]any {
	return map[string]any{"error": perr.body(newRequestID())}
}

// takeOutbox returns and empties the queued webhooks. e.mu is held.
func (e *Emulator) takeOutbox() []webhook {
	out := e.outbox
	e.outbox = nil
	return out
}

// deliver POSTs each webhook, signed, and waits for the receiver's answer,
// so that a test sees its effect when the Plaid call that caused it
// returns. Plaid retries failed deliveries; the emulator logs and drops
// them. e.mu must not be held: the receiver calls back for the key.
func (e *Emulator) deliver(hooks []webhook) {
	for _, h := range hooks {
		e.mu.Lock()
		lost := e.lose > 0
		if lost {
			e.lose--
		}
		e.mu.Unlock()
		if lost {
			e.log.Info("plaidemu: webhook lost, as told", "webhook_code", h.body["webhook_code"])
			continue
		}
		body, err := json.Marshal(h.body)
		if err != nil {
			e.log.Warn("plaidemu: encoding a webhook", "err", err)
			continue
		}
		req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
		if err != nil {
			e.log.Warn("plaidemu: webhook URL", "err", err)
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Plaid-Verification", SignWebhook(e.webhookKey.private, e.webhookKey.id, e.now(), body))
		resp, err := e.webhookClient.Do(req)
		if err != nil {
			e.log.Warn("plaidemu: delivering a webhook", "webhook_code", h.body["webhook_code"], "err", err)
			continue
		}
		resp.Body.Close()
		e.log.Info("plaidemu: webhook delivered", "webhook_code", h.body["webhook_code"], "status", resp.StatusCode)
	}
}

// webhookVerificationKeyGet serves /webhook_verification_key/get: the JWK
// of key_id, or INVALID_FIELD for a key the emulator never used.
func (e *Emulator) webhookVerificationKeyGet(f *fields) (map[string]any, *Error) {
	kid := f.str("key_id", true)
	if err := f.err(); err != nil {
		return nil, err
	}
	if kid != e.webhookKey.id {
		return nil, errInvalidField("key_id %q is not a webhook verification key", kid)
	}
	return map[string]any{"key": e.webhookKey.jwk()}, nil
}

// itemWebhookCodes are the webhook codes /sandbox/item/fire_webhook sends
// as ITEM webhooks; any other is sent with webhook_type given in the
// request (or TRANSACTIONS), as Plaid's DEFAULT_UPDATE is.
var itemWebhookCodes = []string{
	"ERROR", "PENDING_EXPIRATION", "PENDING_DISCONNECT", "LOGIN_REPAIRED",
	"USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED", "NEW_ACCOUNTS_AVAILABLE", "WEBHOOK_UPDATE_ACKNOWLEDGED",
}

// sandboxItemFireWebhook serves /sandbox/item/fire_webhook: it sends the
// Item's webhook URL the webhook_code asked for. ERROR carries
// ITEM_LOGIN_REQUIRED; NEW_ACCOUNTS_AVAILABLE makes a new account
// available, USER_ACCOUNT_REVOKED revokes the Item's first account,
// PENDING_EXPIRATION and PENDING_DISCONNECT set the consent expiration
// (as /emulator/item/set_state does); codes outside itemWebhookCodes go
// out with the requested webhook_type, to exercise receivers on types
// they do not know.
func (e *Emulator) sandboxItemFireWebhook(f *fields) (map[string]any, *Error) {
	it, perr := e.itemFromRequest(f)
	if perr != nil {
		return nil, perr
	}
	code := f.str("webhook_code", true)
	typ := f.str("webhook_type", false)
	if err := f.err(); err != nil {
		return nil, err
	}
	if it.webhook == "" {
		return nil, sandboxErr("SANDBOX_WEBHOOK_INVALID", "Webhook for this item is either not set up, or invalid. Please update the item's webhook and try again.")
	}
	switch {
	case code == "ERROR":
		e.queueItemWebhook(it, "ITEM", code, errorWebhookFields(errItemLoginRequired()))
	case code == "NEW_ACCOUNTS_AVAILABLE":
		perr = e.addNewAccount(it)
	case code == "USER_ACCOUNT_REVOKED":
		perr = e.revokeAccount(it)
	case code == "PENDING_EXPIRATION":
		perr = e.setPendingExpiration(it)
	case code == "PENDING_DISCONNECT":
		perr = e.setPendingDisconnect(it, "INSTITUTION_TOKEN_EXPIRATION")
	case slices.Contains(itemWebhookCodes, code):
		e.queueItemWebhook(it, "ITEM", code, nil)
	default:
		if typ == "" {
			typ = "TRANSACTIONS"
		}
		e.outbox = append(e.outbox, webhook{url: it.webhook, body: map[string]any{
			"webhook_type": typ, "webhook_code": code, "item_id": it.id, "environment": env,
		}})
	}
	if perr != nil {
		return nil, perr
	}
	return map[string]any{"webhook_fired": true}, nil
}

// LoseWebhooks makes the next n webhooks get lost on the way (never
// delivered, never retried), so that a test can see how the receiver
// recovers.
func (e *Emulator) LoseWebhooks(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lose = n
}
