package plaidemu

import (
	"fmt"
	"net/http"
	"strings"
)

// Plaid error types the emulator answers with.
const (
	TypeInvalidRequest = "INVALID_REQUEST"
	TypeInvalidInput   = "INVALID_INPUT"
	TypeItemError      = "ITEM_ERROR"
	TypeInstitution    = "INSTITUTION_ERROR"
	TypeRateLimit      = "RATE_LIMIT_EXCEEDED"
	TypeAPIError       = "API_ERROR"
	TypeSandboxError   = "SANDBOX_ERROR"
)

// Error is a Plaid error: the fields of Plaid's error body and the HTTP
// status it is sent with. CreatePublicToken returns one; FailNext takes one.
type Error struct {
	// Status is the HTTP status; 0 means the status Plaid uses for Type.
	Status int
	// Type is error_type, one of the Type* constants or any other Plaid type.
	Type string
	// Code is error_code, such as "INVALID_PUBLIC_TOKEN".
	Code string
	// Message is error_message, for developers.
	Message string
	// DisplayMessage is display_message, for end users; empty is sent as null.
	DisplayMessage string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("plaidemu: %s/%s: %s", e.Type, e.Code, e.Message)
}

// HTTPStatus returns Status, or the status Plaid sends for Type when Status
// is 0: 400 for request, input, item and institution errors, 429 for rate
// limits, 500 for API errors, 404 for the NOT_FOUND route error.
func (e *Error) HTTPStatus() int {
	switch {
	case e.Status != 0:
		return e.Status
	case e.Code == "NOT_FOUND":
		return http.StatusNotFound
	case e.Type == TypeRateLimit:
		return http.StatusTooManyRequests
	case e.Type == TypeAPIError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// errorBody is Plaid's error body.
type errorBody struct {
	ErrorType        string  `json:"error_type"`
	ErrorCode        string  `json:"error_code"`
	ErrorCodeReason  *string `json:"error_code_reason"`
	ErrorMessage     string  `json:"error_message"`
	DisplayMessage   *string `json:"display_message"`
	RequestID        string  `json:"request_id"`
	DocumentationURL string  `json:"documentation_url"`
	SuggestedAction  *string `json:"suggested_action"`
}

func (e *Error) body(requestID string) errorBody {
	b := errorBody{
		ErrorType:        e.Type,
		ErrorCode:        e.Code,
		ErrorMessage:     e.Message,
		RequestID:        requestID,
		DocumentationURL: documentationURL(e.Type, e.Code),
	}
	if e.DisplayMessage != "" {
		b.DisplayMessage = &e.DisplayMessage
	}
	return b
}

// documentationURL points at Plaid's page for the error, as Plaid does.
func documentationURL(typ, code string) string {
	page := strings.ToLower(strings.TrimSuffix(typ, "_ERROR"))
	page = strings.ReplaceAll(page, "_", "-")
	return "https://plaid.com/docs/errors/" + page + "/#" + strings.ToLower(code)
}

func plaidErr(typ, code, format string, args ...any) *Error {
	return &Error{Type: typ, Code: code, Message: fmt.Sprintf(format, args...)}
}

// sandboxErr is a SANDBOX_ERROR, Plaid's type for a sandbox operation it
// cannot perform (SANDBOX_PRODUCT_NOT_ENABLED, SANDBOX_WEBHOOK_INVALID,
// SANDBOX_ACCOUNT_INVALID, ...), sent with HTTP 400.
func sandboxErr(code, format string, args ...any) *Error {
	return plaidErr(TypeSandboxError, code, format, args...)
}

func errNotFound() *Error {
	return plaidErr(TypeInvalidRequest, "NOT_FOUND", "not found")
}

func errInvalidBody() *Error {
	return plaidErr(TypeInvalidRequest, "INVALID_BODY", "body could not be parsed as a JSON object")
}

func errInvalidHeaders() *Error {
	return plaidErr(TypeInvalidRequest, "INVALID_HEADERS", "Content-Type must be application/json")
}

func errInvalidAPIKeys() *Error {
	return plaidErr(TypeInvalidInput, "INVALID_API_KEYS", "invalid client_id or secret provided")
}

func errMissingFields(fields []string) *Error {
	return plaidErr(TypeInvalidRequest, "MISSING_FIELDS", "the following required fields are missing: %s", strings.Join(fields, ", "))
}

func errInvalidField(format string, args ...any) *Error {
	return plaidErr(TypeInvalidRequest, "INVALID_FIELD", format, args...)
}

func errInvalidPublicToken(why string) *Error {
	return plaidErr(TypeInvalidInput, "INVALID_PUBLIC_TOKEN", "provided public token %s", why)
}

func errInvalidLinkToken(why string) *Error {
	return plaidErr(TypeInvalidInput, "INVALID_LINK_TOKEN", "provided link token %s", why)
}

func errInvalidAccessToken() *Error {
	return plaidErr(TypeInvalidInput, "INVALID_ACCESS_TOKEN", "could not find matching access token")
}

func errItemNotFound() *Error {
	return plaidErr(TypeItemError, "ITEM_NOT_FOUND", "item not found: it does not exist or was removed with /item/remove")
}

func errInvalidInstitution() *Error {
	return plaidErr(TypeInvalidInput, "INVALID_INSTITUTION", "invalid institution_id provided")
}

func errInvalidCredentials() *Error {
	return &Error{Type: TypeItemError, Code: "INVALID_CREDENTIALS", Message: "the provided credentials were not correct",
		DisplayMessage: "The provided credentials were not correct. Please try again."}
}

func errInvalidAccountID() *Error {
	return plaidErr(TypeInvalidInput, "INVALID_ACCOUNT_ID", "one or more of the account IDs is invalid")
}

func errItemLoginRequired() *Error {
	return plaidErr(TypeItemError, "ITEM_LOGIN_REQUIRED", "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information. use Link's update mode to restore the item to a good state")
}
