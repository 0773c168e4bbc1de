package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Delivery is one verified Plaid webhook delivery.
type Delivery struct {
	// Body is the raw body the signature covers.
	Body []byte
	// KeyID is the kid of the key that signed it.
	KeyID string
	// ID identifies the delivery (the hash of its signed JWT): each is
	// applied once, across replicas and restarts.
	ID string
}

// plaidWebhook is the part of a Plaid webhook body linkd reads.
type plaidWebhook struct {
	WebhookType string `json:"webhook_type"`
	WebhookCode string `json:"webhook_code"`
	ItemID      string `json:"item_id"`
	AccountID   string `json:"account_id"`
	Error       *struct {
		ErrorType string `json:"error_type"`
		ErrorCode string `json:"error_code"`
	} `json:"error"`
	ConsentExpirationTime string `json:"consent_expiration_time"`
	Reason                string `json:"reason"`
	DisconnectTime        string `json:"disconnect_time"`
}

// ApplyWebhook records a verified delivery and applies it to its Item. It
// returns the Item it changed (nil when none) and replayed true for a
// delivery applied before, which changes nothing. EINVALID when the body
// is not a JSON object.
func (s *Service) ApplyWebhook(ctx context.Context, d Delivery) (item *linkdv1.Item, replayed bool, err error) {
	var hook plaidWebhook
	if err := json.Unmarshal(d.Body, &hook); err != nil {
		return nil, false, linkd.InvalidField("body", "body is not a JSON webhook")
	}
	stored := &storagev1.StoredWebhook{
		WebhookType: hook.WebhookType,
		WebhookCode: hook.WebhookCode,
		ItemId:      hook.ItemID,
		Body:        redactWebhookBody(d.Body),
		KeyId:       d.KeyID,
	}
	w := linkd.ItemWebhook{Type: hook.WebhookType, Code: hook.WebhookCode, AccountID: hook.AccountID, Reason: hook.Reason}
	if hook.Error != nil {
		stored.ErrorCode, w.ErrorType, w.ErrorCode = hook.Error.ErrorCode, hook.Error.ErrorType, hook.Error.ErrorCode
	}
	if t, err := time.Parse(time.RFC3339Nano, hook.ConsentExpirationTime); err == nil {
		w.ConsentExpiration = t
	}
	if t, err := time.Parse(time.RFC3339Nano, hook.DisconnectTime); err == nil {
		w.DisconnectTime = t
	}
	apply := linkd.ApplyItemWebhook(w, s.now())
	item, err = s.store.RecordWebhook(ctx, stored, d.ID, apply)
	if linkd.ErrorCode(err) == linkd.ECONFLICT {
		s.log.WarnContext(ctx, "webhook delivery replayed; ignored", "kid", d.KeyID)
		return nil, true, nil
	} else if err != nil {
		return nil, false, err
	}
	attrs := []any{"webhook_type", hook.WebhookType, "webhook_code", hook.WebhookCode, "item_id", hook.ItemID}
	if item != nil {
		attrs = append(attrs, "status", item.GetStatus().String())
	}
	s.log.InfoContext(ctx, "webhook received", attrs...)
	if hook.WebhookType == "LINK" {
		// Recorded first, so that a replay changes nothing; a failure
		// here fails the delivery, and Plaid's next attempt (signed
		// anew, so not a replay) or the recovery job files it, once.
		if err := s.applyLinkWebhook(ctx, hook.WebhookCode, d.Body); err != nil {
			return nil, false, err
		}
	}
	return item, false, nil
}

// webhookSecretKeys are the top-level keys of Plaid webhook bodies that
// carry tokens: LINK webhooks (SESSION_FINISHED, ITEM_ADD_RESULT) send the
// public token(s) and the link token. linkd never stores them in plain.
var webhookSecretKeys = []string{"public_token", "public_tokens", "link_token", "access_token"}

// redactWebhookBody returns the body with every token-bearing key's value
// replaced by "[redacted]", re-encoded; a body without such keys is
// returned as it came. The caller has checked that body is a JSON object.
func redactWebhookBody(body []byte) []byte {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil
	}
	redacted := false
	for _, k := range webhookSecretKeys {
		if _, ok := fields[k]; ok {
			fields[k] = json.RawMessage(`"[redacted]"`)
			redacted = true
		}
	}
	if !redacted {
		return body
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil
	}
	return out
}
