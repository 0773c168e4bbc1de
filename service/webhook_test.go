package service

import (
	"strings"
	"testing"
)

func TestRedactWebhookBody(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"ItemWebhookUntouched", `{"webhook_type":"ITEM","webhook_code":"ERROR","item_id":"i1"}`, `{"webhook_type":"ITEM","webhook_code":"ERROR","item_id":"i1"}`},
		{"SessionFinished", `{"webhook_type":"LINK","webhook_code":"SESSION_FINISHED","public_token":"public-sandbox-abc","public_tokens":["public-sandbox-abc"],"link_token":"link-sandbox-xyz"}`,
			`{"link_token":"[redacted]","public_token":"[redacted]","public_tokens":"[redacted]","webhook_code":"SESSION_FINISHED","webhook_type":"LINK"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(redactWebhookBody([]byte(tt.in)))
			if got != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(got, "public-sandbox-") || strings.Contains(got, "link-sandbox-") {
				t.Errorf("a token survived: %s", got)
			}
		})
	}
}
