package jwt

import (
	"strings"
	"testing"
)

// TestClip keeps an attacker's header out of errors (and so out of logs)
// beyond a few bytes.
func TestClip(t *testing.T) {
	if got := clip(strings.Repeat("A", 700<<10)); len(got) > maxEchoed+3 {
		t.Fatalf("clip kept %d bytes", len(got))
	}
	if got := clip("ES256"); got != "ES256" {
		t.Fatalf("clip(ES256) = %q", got)
	}
}
