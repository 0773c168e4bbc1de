package plaidemu

import (
	"math/rand/v2"

	"github.com/google/uuid"
)

const (
	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// idLength is the length of Plaid's item_id and account_id.
	idLength = 37
	// requestIDLength is the length of Plaid's request_id.
	requestIDLength = 15
	// env is the environment part of every token the emulator issues.
	env = "sandbox"
)

// randomBase62 returns n random base62 characters. math/rand/v2's global
// source is seeded from the OS, which is enough for ids that only need to be
// unique, not secret. Each 64-bit draw gives 7 characters, not one: the
// remainders are uniform to within 62^7/2^64 < 10^-6.
func randomBase62(n int) string {
	b := make([]byte, n)
	var r uint64
	for i := range b {
		if i%7 == 0 {
			r = rand.Uint64()
		}
		b[i] = base62[r%62]
		r /= 62
	}
	return string(b)
}

func newItemID() string      { return randomBase62(idLength) }
func newRequestID() string   { return randomBase62(requestIDLength) }
func newLinkToken() string   { return "link-" + env + "-" + uuid.NewString() }
func newPublicToken() string { return "public-" + env + "-" + uuid.NewString() }
func newAccessToken() string { return "access-" + env + "-" + uuid.NewString() }
