package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// The database layout. Every bucket is top level and created at Open; every
// value is the protobuf encoding of a generated message (or empty, for index
// entries, whose information is all in the key). proto.Unmarshal copies what
// it reads, so decoded values stay valid after their transaction ends.
//
//	bucket              key                                          value
//	------              ---                                          -----
//	link_tokens         link_token                                   storagev1.StoredLinkToken
//	sessions            link_session_id                              linkdv1.LinkSession, no public_token
//	items               item_id                                      linkdv1.Item
//	user_items          str(client_user_id) be64(created_at) item_id empty
//	access_tokens       item_id                                      storagev1.SealedAccessToken
//	public_token_uses   sha256(public_token)                         storagev1.PublicTokenUse
//	item_public_tokens  str(item_id) sha256(public_token)            empty
//	pending_exchanges   sha256(public_token)                         storagev1.PendingExchange
//	webhooks            be64(received_at) sha256(body)               storagev1.StoredWebhook
//
// Key parts are concatenated, with no separator, where
//
//	str(s)       is the 4-byte big-endian length of s followed by s, so that a
//	             prefix scan for one id never matches a longer id that starts
//	             with it (ids are caller data and may hold any byte);
//	be64(t)      is t in Unix nanoseconds as a big-endian uint64 with the sign
//	             bit flipped, so that bytes order like times, before 1970 too;
//	sha256(p)    is the 32-byte SHA-256 of the public token: the plain public
//	             token is never written.
//
// user_items lists a user's Items oldest first with one prefix scan;
// item_public_tokens is the reverse of public_token_uses, so that DeleteItem
// finds the uses pointing at an Item without a full scan. pending_exchanges
// marks exchanges sent to Plaid whose end linkd has not seen; PutItem removes
// the mark in the transaction that records the use. webhooks lists verified
// Plaid webhooks oldest first; the body's hash keeps two received in the
// same nanosecond apart. Access tokens live
// apart from items, sealed with AES-256-GCM under a master key named by
// key_id, with the item_id as additional data.
var (
	bucketLinkTokens       = []byte("link_tokens")
	bucketSessions         = []byte("sessions")
	bucketItems            = []byte("items")
	bucketUserItems        = []byte("user_items")
	bucketAccessTokens     = []byte("access_tokens")
	bucketPublicTokenUses  = []byte("public_token_uses")
	bucketItemPublicTokens = []byte("item_public_tokens")
	bucketPendingExchanges = []byte("pending_exchanges")
	bucketWebhooks         = []byte("webhooks")
)

// allBuckets is every bucket; Open creates each one.
var allBuckets = [][]byte{
	bucketLinkTokens,
	bucketSessions,
	bucketItems,
	bucketUserItems,
	bucketAccessTokens,
	bucketPublicTokenUses,
	bucketItemPublicTokens,
	bucketPendingExchanges,
	bucketWebhooks,
}

// maxIDLen bounds the ids written into keys, well under bbolt's 32 KiB key
// limit, so that an oversized id is the caller's EINVALID and not a storage
// failure.
const maxIDLen = 1024

// appendStr appends str(s): s's 4-byte big-endian length, then s.
func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendTime appends be64(t): Unix nanoseconds, big-endian, sign bit flipped.
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
}

// userItemsPrefix is the user_items prefix of every key of one user.
func userItemsPrefix(clientUserID string) []byte {
	return appendStr(make([]byte, 0, 4+len(clientUserID)), clientUserID)
}

// userItemKey is the user_items key of one Item.
func userItemKey(clientUserID string, createdAt time.Time, itemID string) []byte {
	b := make([]byte, 0, 4+len(clientUserID)+8+len(itemID))
	b = appendStr(b, clientUserID)
	b = appendTime(b, createdAt)
	return append(b, itemID...)
}

// publicTokenKey is the public_token_uses key of a public token.
func publicTokenKey(publicToken string) []byte {
	sum := sha256.Sum256([]byte(publicToken))
	return sum[:]
}

// itemPublicTokensPrefix is the item_public_tokens prefix of one Item.
func itemPublicTokensPrefix(itemID string) []byte {
	return appendStr(make([]byte, 0, 4+len(itemID)+sha256.Size), itemID)
}

// itemPublicTokenKey is the item_public_tokens key of one use; its last
// sha256.Size bytes are the public_token_uses key.
func itemPublicTokenKey(itemID string, publicTokenSum []byte) []byte {
	return append(itemPublicTokensPrefix(itemID), publicTokenSum...)
}

// webhookKey is the webhooks key of a webhook received at t with body.
func webhookKey(t time.Time, body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(appendTime(make([]byte, 0, 8+sha256.Size), t), sum[:]...)
}

// Index corruption, which only a bug or a damaged file can cause.
var (
	errMalformedKey  = errors.New("malformed index key")
	errDanglingIndex = errors.New("index entry names a missing record")
)
