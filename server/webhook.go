package server

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/service"
)

// WebhookPath is where linkd receives Plaid's webhooks: give Plaid
// <linkd's public URL>/v1/webhooks/plaid as the webhook URL.
const WebhookPath = "/v1/webhooks/plaid"

// WebhookRoute returns the route that receives Plaid webhooks. It is not
// behind the API key (Plaid cannot send one): every body must carry a valid
// Plaid-Verification JWT, and anything unverified gets 401 and changes
// nothing.
func (s *Server) WebhookRoute() Route {
	return Route{Pattern: "POST " + WebhookPath, Handler: http.HandlerFunc(s.serveWebhook)}
}

// serveWebhook verifies a Plaid webhook, records it and applies it to its
// Item. Verification comes before anything is read or written.
func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeHTTPError(w, r, s.log, http.StatusRequestEntityTooLarge, linkd.InvalidField("body", "request body too large or unreadable"))
		return
	}
	// The verifier logs refusals itself, at a bounded rate: a line per
	// forged request would let anyone fill the log.
	d, err := s.webhooks.Verify(ctx, r.Header.Get("Plaid-Verification"), body)
	s.countWebhook(body, err)
	if err != nil {
		if linkd.ErrorCode(err) == linkd.EUNAUTHORIZED {
			err = linkd.Errorf(linkd.EUNAUTHORIZED, "webhook not verified")
		} else {
			err = linkd.Errorf(linkd.EUNAVAILABLE, "cannot verify the webhook now; retry")
		}
		writeHTTPError(w, r, s.log, 0, err)
		return
	}
	// A verified delivery is good for the verifier's MaxAge; each is
	// applied once, across replicas and restarts (the store keeps its id),
	// so a captured delivery replayed cannot undo a later change (an old
	// ERROR after LOGIN_REPAIRED). Plaid signs every delivery anew.
	_, _, err = s.svc.ApplyWebhook(ctx, service.Delivery{Body: body, KeyID: d.KeyID, ID: d.DeliveryID})
	switch code := linkd.ErrorCode(err); {
	case code == linkd.EINVALID:
		writeHTTPError(w, r, s.log, 0, err)
		return
	case err != nil:
		s.log.ErrorContext(ctx, "webhook not recorded", "err", err)
		writeHTTPError(w, r, s.log, 0, linkd.Errorf(linkd.EUNAVAILABLE, "webhook not recorded; retry"))
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
