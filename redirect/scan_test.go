package redirect

import (
	"strings"
	"testing"
)

// FuzzScan checks the word-at-a-time searches against byte loops.
func FuzzScan(f *testing.F) {
	for _, s := range []string{"", "a", "abcdefgh", "abcdefg\x1f", "\x7fbcdefghi", "abcdefghij%", "abcdefgh+", "\x80\xff\x20\x1f", "é%+\x00", `abcdefgh"`, `ab\cdefghij`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		control := false
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				control = true
			}
		}
		if got := hasControl(s); got != control {
			t.Errorf("hasControl(%q) = %v, want %v", s, got, control)
		}
		if got, want := indexEscape(s), strings.IndexAny(s, "%+"); got != want {
			t.Errorf("indexEscape(%q) = %d, want %d", s, got, want)
		}
		want := -1
		for i := len(s) - 1; i >= 0; i-- {
			if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
				want = i
			}
		}
		if got := indexQuoteOrEscape(s); got != want {
			t.Errorf("indexQuoteOrEscape(%q) = %d, want %d", s, got, want)
		}
		plain := strings.IndexAny(s, "%+") < 0
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				plain = false
			}
		}
		if got := plainASCII(s); got != plain {
			t.Errorf("plainASCII(%q) = %v, want %v", s, got, plain)
		}
	})
}
