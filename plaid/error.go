package plaid

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	plaidgo "github.com/plaid/plaid-go/v42/plaid"

	"github.com/linkd/linkd"
)

// convert turns the error of one plaid-go call into a *linkd.Error. It must
// get plaid-go's error as returned: plaidgo.ToPlaidError is a type assertion
// on plaidgo.GenericOpenAPIError and fails on anything wrapped. secrets are
// the tokens sent in the call; they, and the API secret, are cut out of every
// message, whatever Plaid or the network said.
//
//   - Plaid answered (status >= 300) with an error body: the code comes from
//     codeFor, Message is Plaid's error_message, Plaid is the body.
//   - Plaid answered >= 300 without one (a proxy's HTML page): codeFor on the
//     status alone, Plaid nil.
//   - Plaid answered 2xx with a body plaid-go cannot decode: EUNAVAILABLE.
//   - No answer: transport failures, timeouts and canceled contexts are
//     EUNAVAILABLE; anything else (plaid-go failing to build the request)
//     is EINTERNAL.
func (c *Client) convert(op string, resp *http.Response, err error, secrets ...string) *linkd.Error {
	pe, notPlaid := plaidgo.ToPlaidError(err) // first, on the raw error
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	secrets = append(secrets, c.secret)

	var e *linkd.Error
	switch {
	case status >= 300 && notPlaid == nil && (pe.ErrorType != "" || pe.ErrorCode != ""):
		p := &linkd.PlaidError{
			ErrorType:      string(pe.ErrorType),
			ErrorCode:      pe.ErrorCode,
			ErrorMessage:   redact(pe.ErrorMessage, secrets),
			DisplayMessage: redact(pe.GetDisplayMessage(), secrets),
			RequestID:      pe.GetRequestId(),
			HTTPStatus:     status,
		}
		e = &linkd.Error{Code: codeFor(p.ErrorType, p.ErrorCode, status), Message: p.ErrorMessage, Plaid: p}
		if e.Message == "" {
			e.Message = fmt.Sprintf("Plaid %s failed with %s/%s", op, p.ErrorType, p.ErrorCode)
		}
		if e.Code == linkd.EINVALID || p.ErrorType == "SANDBOX_ERROR" {
			e.Field = fieldFor(p.ErrorCode)
		}
		e.Fact = factFor(p.ErrorCode)
	case status >= 300:
		e = linkd.Errorf(codeFor("", "", status), "Plaid %s answered HTTP %d without a Plaid error body", op, status)
	case resp != nil:
		e = linkd.Errorf(linkd.EUNAVAILABLE, "Plaid %s answered HTTP %d with a body linkd cannot read", op, status)
	default:
		e = transportError(op, err)
	}
	e.Message = redact(e.Message, secrets)
	return e
}

// factFor names the linkd fact a Plaid error code states, or nil.
func factFor(errorCode string) error {
	switch errorCode {
	case "INVALID_PUBLIC_TOKEN":
		return linkd.ErrPublicTokenSpent
	case "ITEM_NOT_FOUND":
		return linkd.ErrItemGone
	}
	return nil
}

// codeFor is the one table from a Plaid error to a linkd code. Rows are
// tried in order; errorType and errorCode are "" when the answer had no
// Plaid error body.
//
//	error_code INVALID_API_KEYS, UNAUTHORIZED_ENVIRONMENT,      EPRECONDITION  linkd's keys or Plaid account
//	  UNAUTHORIZED_ROUTE_ACCESS, DIRECT_INTEGRATION_NOT_ENABLED,               are wrong, not the caller's input
//	  INVALID_HEADERS, INCOMPATIBLE_API_VERSION, SANDBOX_ONLY
//	error_code INVALID_ACCESS_TOKEN                              EPRECONDITION  the stored Item is gone (removed at
//	                                                                            my.plaid.com) or of another env
//	error_code PLANNED_MAINTENANCE                               EUNAVAILABLE
//	HTTP 429 or error_type RATE_LIMIT_EXCEEDED                   ERATELIMIT
//	HTTP 5xx                                                     EUNAVAILABLE
//	error_type INVALID_REQUEST, INVALID_INPUT                    EINVALID
//	error_type ITEM_ERROR                                        EPRECONDITION  the Item needs the user (login, consent)
//	error_type SANDBOX_ERROR                                     EPRECONDITION  the sandbox Item cannot do that (no such
//	                                                                            product, no webhook URL, ...); Field names
//	                                                                            the request field it is about
//	error_type API_ERROR, INSTITUTION_ERROR                      EUNAVAILABLE
//	no Plaid error body (other 3xx/4xx from something else)      EUNAVAILABLE
//	any other error_type (OAUTH_ERROR, ...)                      EPRECONDITION
func codeFor(errorType, errorCode string, status int) string {
	switch errorCode {
	case "INVALID_API_KEYS", "UNAUTHORIZED_ENVIRONMENT", "UNAUTHORIZED_ROUTE_ACCESS", "DIRECT_INTEGRATION_NOT_ENABLED",
		"INVALID_HEADERS", "INCOMPATIBLE_API_VERSION", "SANDBOX_ONLY":
		return linkd.EPRECONDITION
	case "INVALID_ACCESS_TOKEN":
		return linkd.EPRECONDITION
	case "PLANNED_MAINTENANCE":
		return linkd.EUNAVAILABLE
	}
	switch {
	case status == http.StatusTooManyRequests || errorType == "RATE_LIMIT_EXCEEDED":
		return linkd.ERATELIMIT
	case status >= 500:
		return linkd.EUNAVAILABLE
	}
	switch errorType {
	case "INVALID_REQUEST", "INVALID_INPUT":
		return linkd.EINVALID
	case "ITEM_ERROR", "SANDBOX_ERROR":
		return linkd.EPRECONDITION
	case "API_ERROR", "INSTITUTION_ERROR", "":
		return linkd.EUNAVAILABLE
	}
	return linkd.EPRECONDITION
}

// fieldFor names the linkd request field an EINVALID or SANDBOX_ERROR
// Plaid error is about, where the error code says so unambiguously; ""
// otherwise. Plaid's MISSING_FIELDS and INVALID_FIELD name Plaid's fields
// in free text, which is not parsed. The sandbox errors about the Item
// itself (it lacks the product, or a webhook URL) name item_id.
func fieldFor(errorCode string) string {
	switch errorCode {
	case "INVALID_PUBLIC_TOKEN":
		return "public_token"
	case "INVALID_INSTITUTION":
		return "institution_id"
	case "INVALID_ACCOUNT_ID", "SANDBOX_ACCOUNT_INVALID":
		return "account_id"
	case "SANDBOX_PRODUCT_NOT_ENABLED", "SANDBOX_WEBHOOK_INVALID":
		return "item_id"
	}
	return ""
}

// transportError converts a call that got no HTTP answer.
func transportError(op string, err error) *linkd.Error {
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.Canceled):
		return linkd.Errorf(linkd.EUNAVAILABLE, "the call to Plaid %s was canceled", op)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return linkd.Errorf(linkd.EUNAVAILABLE, "Plaid %s did not answer in time", op)
	case errors.As(err, &urlErr):
		// urlErr.Err leaves out the URL; it says what failed ("dial tcp
		// ...: connection refused").
		return linkd.Errorf(linkd.EUNAVAILABLE, "Plaid %s is unreachable: %v", op, urlErr.Err)
	}
	return linkd.Errorf(linkd.EINTERNAL, "calling Plaid %s: %v", op, err)
}

// redact replaces every secret in s.
func redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
