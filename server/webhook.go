package server

import (
	"encoding/json"
	"io"
	"net/http"

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
		writeWebhookError(w, http.StatusRequestEntityTooLarge, "request body too large or unreadable")
		return
	}
	// The verifier logs refusals itself, at a bounded rate: a line per
	// forged request would let anyone fill the log.
	d, err := s.webhooks.Verify(ctx, r.Header.Get("Plaid-Verification"), body)
	if err != nil {
		if linkd.ErrorCode(err) == linkd.EUNAUTHORIZED {
			writeWebhookError(w, http.StatusUnauthorized, "webhook not verified")
		} else {
			writeWebhookError(w, http.StatusServiceUnavailable, "cannot verify the webhook now; retry")
		}
		return
	}
	// A verified delivery is good for the verifier's MaxAge; each is
	// applied once, across replicas and restarts (the store keeps its id),
	// so a captured delivery replayed cannot undo a later change (an old
	// ERROR after LOGIN_REPAIRED). Plaid signs every delivery anew.
	_, _, err = s.svc.ApplyWebhook(ctx, service.Delivery{Body: body, KeyID: d.KeyID, ID: d.DeliveryID})
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

// writeWebhookError answers like the gateway does: {"code", "message"}
// with the gRPC code that matches status.
func writeWebhookError(w http.ResponseWriter, status int, message string) {
	code := map[int]int{400: 3, 401: 16, 413: 3, 503: 14}[status]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"code": code, "message": message})
	w.Write(b)
}
