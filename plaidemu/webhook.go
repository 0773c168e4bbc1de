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

	"github.com/google/uuid"
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
func (e *Emulator) webhookVerificationKeyGet(f *fields) (answer, *Error) {
	kid := f.str("key_id", true)
	if err := f.err(); err != nil {
		return nil, err
	}
	if kid != e.webhookKey.id {
		return nil, errInvalidField("key_id %q is not a webhook verification key", kid)
	}
	return object{"key": e.webhookKey.jwk()}, nil
}

// FireWebhookCodes are the webhook_code values Plaid's spec lets
// /sandbox/item/fire_webhook fire (plaid-openapi 2020-09-14,
// SandboxItemFireWebhookRequest), and FireWebhookTypes its webhook_type
// values (WebhookType). The endpoint refuses any other with INVALID_FIELD,
// as Plaid's request validation does: PENDING_EXPIRATION, for one, cannot
// be fired in Plaid's sandbox (see SetItemState).
var (
	FireWebhookCodes = []string{
		"DEFAULT_UPDATE", "NEW_ACCOUNTS_AVAILABLE", "SMS_MICRODEPOSITS_VERIFICATION", "AUTHORIZATION_GRANTED",
		"USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED", "PENDING_DISCONNECT", "RECURRING_TRANSACTIONS_UPDATE",
		"LOGIN_REPAIRED", "SYNC_UPDATES_AVAILABLE", "PRODUCT_READY", "ERROR",
	}
	FireWebhookTypes = []string{"AUTH", "HOLDINGS", "INVESTMENTS_TRANSACTIONS", "ITEM", "LIABILITIES", "TRANSACTIONS", "ASSETS"}
)

// fireWebhookType is the webhook_type each code is fired as, and the
// product the Item needs for it ("" for none), after Plaid's description of
// the endpoint. DEFAULT_UPDATE has none: its type comes from the request.
var fireWebhookType = map[string]struct{ typ, product string }{
	"NEW_ACCOUNTS_AVAILABLE":         {"ITEM", ""},
	"USER_PERMISSION_REVOKED":        {"ITEM", ""},
	"USER_ACCOUNT_REVOKED":           {"ITEM", ""},
	"PENDING_DISCONNECT":             {"ITEM", ""},
	"LOGIN_REPAIRED":                 {"ITEM", ""},
	"SMS_MICRODEPOSITS_VERIFICATION": {"AUTH", "auth"},
	"RECURRING_TRANSACTIONS_UPDATE":  {"TRANSACTIONS", "transactions"},
	"SYNC_UPDATES_AVAILABLE":         {"TRANSACTIONS", "transactions"},
	"PRODUCT_READY":                  {"ASSETS", "assets"},
	"ERROR":                          {"ASSETS", "assets"},
	// AUTHORIZATION_GRANTED is a Plaid Check webhook; no emulator Item has
	// Plaid Check.
	"AUTHORIZATION_GRANTED": {"", "cra_base_report"},
}

// defaultUpdateProducts are the webhook types DEFAULT_UPDATE fires and the
// product each needs (Plaid also names IDENTITY, which is not among
// webhook_type's values).
var defaultUpdateProducts = map[string]string{
	"AUTH": "auth", "TRANSACTIONS": "transactions", "INVESTMENTS_TRANSACTIONS": "investments",
	"HOLDINGS": "investments", "LIABILITIES": "liabilities",
}

// sandboxItemFireWebhook serves /sandbox/item/fire_webhook as Plaid's spec
// describes it: webhook_code one of FireWebhookCodes, webhook_type (one of
// FireWebhookTypes) required for DEFAULT_UPDATE and, when given for another
// code, its type. ERROR and PRODUCT_READY are ASSETS webhooks (an ITEM
// ERROR comes from /sandbox/item/reset_login). An Item without the product
// a webhook is about is refused with SANDBOX_PRODUCT_NOT_ENABLED, one
// without a webhook URL with SANDBOX_WEBHOOK_INVALID. Some codes change the
// Item as their event would: NEW_ACCOUNTS_AVAILABLE makes a new account
// available, USER_ACCOUNT_REVOKED revokes the Item's first account,
// PENDING_DISCONNECT (reason INSTITUTION_MIGRATION) sets its consent to
// expire at disconnect_time, LOGIN_REPAIRED clears ITEM_LOGIN_REQUIRED.
func (e *Emulator) sandboxItemFireWebhook(f *fields) (answer, *Error) {
	it, perr := e.itemFromRequest(f)
	if perr != nil {
		return nil, perr
	}
	code := f.str("webhook_code", true)
	typ := f.str("webhook_type", false)
	f.oneOf("webhook_code", FireWebhookCodes, code)
	f.oneOf("webhook_type", FireWebhookTypes, typ)
	if err := f.err(); err != nil {
		return nil, err
	}
	product := ""
	if code == "DEFAULT_UPDATE" {
		var ok bool
		if typ == "" {
			return nil, errMissingFields([]string{"webhook_type"})
		}
		if product, ok = defaultUpdateProducts[typ]; !ok {
			return nil, errInvalidField("webhook_type %s has no DEFAULT_UPDATE; use one of AUTH, TRANSACTIONS, INVESTMENTS_TRANSACTIONS, HOLDINGS, LIABILITIES", typ)
		}
	} else {
		want := fireWebhookType[code]
		switch {
		case typ != "" && want.typ != "" && typ != want.typ && code == "ERROR":
			return nil, errInvalidField("webhook_code ERROR fires an ASSETS webhook, not %s; an ITEM ERROR (ITEM_LOGIN_REQUIRED) comes from /sandbox/item/reset_login", typ)
		case typ != "" && want.typ != "" && typ != want.typ:
			return nil, errInvalidField("webhook_code %s fires %s webhooks, not %s", code, want.typ, typ)
		}
		typ, product = want.typ, want.product
	}
	if product != "" && !slices.Contains(it.products, product) {
		return nil, sandboxErr("SANDBOX_PRODUCT_NOT_ENABLED", "The %s product is not enabled on this item", product)
	}
	if it.webhook == "" {
		return nil, sandboxErr("SANDBOX_WEBHOOK_INVALID", "Webhook for this item is either not set up, or invalid. Please update the item's webhook and try again.")
	}
	switch code {
	case "NEW_ACCOUNTS_AVAILABLE":
		perr = e.addNewAccount(it)
	case "USER_ACCOUNT_REVOKED":
		perr = e.revokeAccount(it)
	case "PENDING_DISCONNECT":
		perr = e.setPendingDisconnect(it, "INSTITUTION_MIGRATION")
	case "LOGIN_REPAIRED":
		if perr = e.changeItem(it, func(it *item) { it.loginRequired = false }); perr == nil {
			e.queueItemWebhook(it, typ, code, nil)
		}
	case "SMS_MICRODEPOSITS_VERIFICATION":
		perr = errInvalidField("the Item is not a Same-Day Micro-deposits Item, which the emulator does not model")
	case "PRODUCT_READY", "ERROR":
		e.outbox = append(e.outbox, webhook{url: it.webhook, body: assetsWebhook(code)})
	default:
		e.queueItemWebhook(it, typ, code, productWebhookFields(typ, code, it))
	}
	if perr != nil {
		return nil, perr
	}
	return object{"webhook_fired": true}, nil
}

// assetsWebhook is the body of an ASSETS PRODUCT_READY or ERROR webhook
// (plaid-go's AssetsProductReadyWebhook, AssetsErrorWebhook): about an
// Asset Report, not an Item, so without item_id; ERROR's error has
// error_type ASSET_REPORT_ERROR.
func assetsWebhook(code string) map[string]any {
	body := map[string]any{"webhook_type": "ASSETS", "webhook_code": code, "asset_report_id": uuid.NewString(), "environment": env}
	if code == "ERROR" {
		body["error"] = plaidErr("ASSET_REPORT_ERROR", "ASSET_REPORT_GENERATION_FAILED", "Asset Report generation failed").body(newRequestID())
	} else {
		body["report_type"] = "FULL"
	}
	return body
}

// productWebhookFields are the fields, beyond the common ones, of the
// Item's product webhooks fire_webhook sends, after plaid-go's models.
func productWebhookFields(typ, code string, it *item) map[string]any {
	switch {
	case code == "SYNC_UPDATES_AVAILABLE":
		return map[string]any{"initial_update_complete": true, "historical_update_complete": true}
	case code == "RECURRING_TRANSACTIONS_UPDATE":
		return map[string]any{"account_ids": slices.Clone(it.accountIDs)}
	case typ == "TRANSACTIONS":
		return map[string]any{"new_transactions": 0}
	case typ == "HOLDINGS":
		return map[string]any{"new_holdings": 0, "updated_holdings": 0}
	case typ == "INVESTMENTS_TRANSACTIONS":
		return map[string]any{"new_investments_transactions": 0, "canceled_investments_transactions": 0}
	case typ == "LIABILITIES":
		return map[string]any{"account_ids_with_new_liabilities": []string{}, "account_ids_with_updated_liabilities": map[string]any{}}
	}
	return nil
}

// LoseWebhooks makes the next n webhooks get lost on the way (never
// delivered, never retried), so that a test can see how the receiver
// recovers.
func (e *Emulator) LoseWebhooks(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lose = n
}
