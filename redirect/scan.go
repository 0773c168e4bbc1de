package redirect

// Byte searches eight bytes at a time (SWAR). A redirect is read a few times
// over (control bytes, escapes, JSON strings); these keep each pass cheap.

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// load64 reads s[i:i+8] as a little-endian word; the compiler merges the
// byte loads into one.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// below is non-zero when a byte of x is below n (n <= 0x80). A borrow only
// ever starts at such a byte, so it has no false positives for "any".
func below(x uint64, n byte) uint64 { return (x - lsbs*uint64(n)) &^ x & msbs }

// equal is non-zero when a byte of x is c.
func equal(x uint64, c byte) uint64 { return below(x^lsbs*uint64(c), 1) }

// hasControl reports whether s has a byte below 0x20 or a DEL.
func hasControl(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if x := load64(s, i); below(x, 0x20)|equal(x, 0x7f) != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// indexEscape returns the index of the first '%' or '+' in s, or -1.
func indexEscape(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if x := load64(s, i); equal(x, '%')|equal(x, '+') != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return i
		}
	}
	return -1
}

// indexQuoteOrEscape returns the index of the first '"', '\\' or byte below
// 0x20 in s, or -1: where a JSON string body ends or needs a closer look.
func indexQuoteOrEscape(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if x := load64(s, i); equal(x, '"')|equal(x, '\\')|below(x, 0x20) != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return -1
}

// plainASCII reports whether s is ASCII without '%' or '+': a query key or
// value that decodes to itself and is valid UTF-8.
func plainASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if x := load64(s, i); x&msbs|equal(x, '%')|equal(x, '+') != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c == '%' || c == '+' {
			return false
		}
	}
	return true
}
