package plaid

import (
	"testing"

	"github.com/linkd/linkd"
)

// TestCodeFor pins the error table, row by row.
func TestCodeFor(t *testing.T) {
	tests := []struct {
		errorType, errorCode string
		status               int
		want                 string
	}{
		{"INVALID_INPUT", "INVALID_API_KEYS", 400, linkd.EPRECONDITION},
		{"INVALID_INPUT", "UNAUTHORIZED_ENVIRONMENT", 400, linkd.EPRECONDITION},
		{"INVALID_REQUEST", "INVALID_HEADERS", 400, linkd.EPRECONDITION},
		{"INVALID_INPUT", "INVALID_ACCESS_TOKEN", 400, linkd.EPRECONDITION},
		{"API_ERROR", "PLANNED_MAINTENANCE", 503, linkd.EUNAVAILABLE},
		{"RATE_LIMIT_EXCEEDED", "ITEM_GET_LIMIT", 429, linkd.ERATELIMIT},
		{"", "", 429, linkd.ERATELIMIT},
		{"INVALID_REQUEST", "INVALID_FIELD", 500, linkd.EUNAVAILABLE},
		{"", "", 502, linkd.EUNAVAILABLE},
		{"INVALID_REQUEST", "MISSING_FIELDS", 400, linkd.EINVALID},
		{"INVALID_INPUT", "INVALID_PUBLIC_TOKEN", 400, linkd.EINVALID},
		{"ITEM_ERROR", "ITEM_NOT_FOUND", 400, linkd.EPRECONDITION},
		{"ITEM_ERROR", "ITEM_LOGIN_REQUIRED", 400, linkd.EPRECONDITION},
		{"API_ERROR", "INTERNAL_SERVER_ERROR", 500, linkd.EUNAVAILABLE},
		{"INSTITUTION_ERROR", "INSTITUTION_DOWN", 400, linkd.EUNAVAILABLE},
		{"", "", 404, linkd.EUNAVAILABLE},
		{"OAUTH_ERROR", "INVALID_OAUTH_STATE_ID", 400, linkd.EPRECONDITION},
		{"SANDBOX_ERROR", "SANDBOX_PRODUCT_NOT_ENABLED", 400, linkd.EPRECONDITION},
		{"SANDBOX_ERROR", "SANDBOX_WEBHOOK_INVALID", 400, linkd.EPRECONDITION},
	}
	for _, tt := range tests {
		if got := codeFor(tt.errorType, tt.errorCode, tt.status); got != tt.want {
			t.Errorf("codeFor(%q, %q, %d) = %s, want %s", tt.errorType, tt.errorCode, tt.status, got, tt.want)
		}
	}
}

// TestFieldFor: the sandbox errors about the Item name item_id, those about
// an account account_id.
func TestFieldFor(t *testing.T) {
	for code, want := range map[string]string{
		"SANDBOX_PRODUCT_NOT_ENABLED": "item_id",
		"SANDBOX_WEBHOOK_INVALID":     "item_id",
		"SANDBOX_ACCOUNT_INVALID":     "account_id",
		"INVALID_ACCOUNT_ID":          "account_id",
		"INVALID_FIELD":               "",
	} {
		if got := fieldFor(code); got != want {
			t.Errorf("fieldFor(%s) = %q, want %q", code, got, want)
		}
	}
}
