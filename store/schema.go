package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// The database layout. Every bucket is top level and created at Open; every
// value is the protobuf encoding of a generated message (or empty, for index
// entries, whose information is all in the key). proto.Unmarshal copies what
// it reads, so decoded values stay valid after their transaction ends.
// Items and sessions are written as their storage records (records.proto)
// through package internal/records, not as the API messages; an Item's
// record also holds what only the store needs of it (itemrecord.go), so
// that one Item is one key in one bucket.
//
//	bucket               key                                               value
//	------               ---                                               -----
//	meta                 "version"                                         storagev1.SchemaVersion
//	                     "migration" (during a migration only)             storagev1.MigrationCursor
//	link_tokens          link_token                                        storagev1.StoredLinkToken
//	link_token_renewals  dead link_token                                   storagev1.LinkTokenRenewal
//	hosted_checks        be64(hosted_check_at) link_token                  empty
//	link_token_checks    link_token                                        be64(hosted_check_at)
//	sessions             link_session_id                                   storagev1.StoredLinkSession (no place for a public token)
//	session_starts       be64(SessionStart) link_session_id                empty
//	items                item_id                                           storagev1.StoredItem, with its sealed access token,
//	                                                                       refresh_due and public_token_sums
//	user_items           str(client_user_id) be64(created_at) item_id      empty
//	institution_items    str(institution_id) be64(created_at) item_id      empty
//	public_token_uses    sha256(public_token)                              storagev1.PublicTokenUse
//	exchange_claims      sha256(public_token)                              storagev1.ExchangeClaim
//	pending_links        str(institution_id) str(client_user_id)          empty
//	                     sha256(public_token)
//	refresh_queue        be64(due) item_id                                 empty
//	webhooks             be64(received_at) sha256(body)                    storagev1.StoredWebhook
//	webhook_deliveries   delivery_id                                       storagev1.WebhookDelivery
//	leases               lease name                                        storagev1.Lease
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
// Indexes, so that no request path scans a whole bucket:
//   - user_items lists a user's Items oldest first with one prefix scan, and
//     institution_items every user's Items at one institution (the
//     duplicate-Item check); both follow an Item whose fields change.
//   - session_starts orders sessions by linkd.SessionStart, for LinkSessions'
//     windows and pages and for Prune (which deletes by
//     linkd.SessionLastSeen, read from each candidate's record); a
//     session's entry moves when an earlier event arrives.
//   - an Item record's public_token_sums is the reverse of
//     public_token_uses, so that DeleteItem finds the uses pointing at it.
//   - hosted_checks orders Hosted Link tokens by when linkd next asks
//     Plaid about them (their webhooks may be lost); link_token_checks is
//     its reverse, so that SetHostedLinkTokenCheck and Prune find a
//     token's entry.
//   - pending_links lists the exchange claims that carry a link (a
//     connected redirect being exchanged) by institution and user, so that
//     a claim finds the pending links it may repeat with one prefix scan
//     (the user's, or every user's at the institution); an entry
//     lives as long as its claim's link (PutItem, ReleaseExchangeClaim and
//     DeleteUserRecords remove both; a lapsed claim keeps it, skipped).
//   - refresh_queue orders queued Item refreshes by due time; an Item
//     record's refresh_due is its reverse (at most one per Item), so that
//     DeferItemRefresh, DeleteItem and UpdateRefreshedItem find an Item's
//     entry.
//
// exchange_claims holds leases on public token exchanges that linkd sent or
// is about to send to Plaid; PutItem removes the claim in the transaction
// that records the use. webhooks lists verified Plaid webhooks oldest
// first; the body's hash keeps two received in the same nanosecond apart.
// webhook_deliveries remembers handled deliveries so a replay is refused.
// Access tokens are sealed by a linkd.Sealer (package seal: AES-256-GCM
// under a master key named by key_id, with the item_id as additional data)
// and kept in their Item's record, which no API message ever reads whole
// (records.Unmarshal drops the store's fields).
//
// Schema versions (meta "version"; no record is version 0, the first
// release): version 1 added link_token_renewals, session_starts,
// institution_items, exchange_claims (replacing pending_exchanges, whose
// marks become released-unknown claims), refresh_queue, item_refreshes,
// webhook_deliveries and leases. Version 2 folded access_tokens
// (item_id → SealedAccessToken), item_refreshes (str(item_id) be64(due))
// and item_public_tokens (str(item_id) sha256(public_token)) into the
// Item records, so that storing a connected Link dirties three pages
// fewer. Open migrates a version 1 file 10,000 Items a transaction, with
// its place kept under meta "migration", and writes version 2 in the
// last (migrate.go).
// hosted_checks and link_token_checks came later without a version: Open
// creates them empty, and no earlier token is a Hosted Link token. So did
// pending_links: no earlier claim carries a link.
var (
	bucketMeta              = []byte("meta")
	bucketLinkTokens        = []byte("link_tokens")
	bucketLinkTokenRenewals = []byte("link_token_renewals")
	bucketHostedChecks      = []byte("hosted_checks")
	bucketLinkTokenChecks   = []byte("link_token_checks")
	bucketSessions          = []byte("sessions")
	bucketSessionStarts     = []byte("session_starts")
	bucketItems             = []byte("items")
	bucketUserItems         = []byte("user_items")
	bucketInstitutionItems  = []byte("institution_items")
	bucketPublicTokenUses   = []byte("public_token_uses")
	bucketExchangeClaims    = []byte("exchange_claims")
	bucketPendingLinks      = []byte("pending_links")
	bucketRefreshQueue      = []byte("refresh_queue")
	bucketWebhooks          = []byte("webhooks")
	bucketWebhookDeliveries = []byte("webhook_deliveries")
	bucketLeases            = []byte("leases")

	// bucketPendingExchanges is version 0's exchange marks; Open migrates
	// them to exchange_claims and deletes the bucket.
	bucketPendingExchanges = []byte("pending_exchanges")
	// Version 1's access tokens and reverse indexes; Open folds them into
	// the Item records and deletes them.
	bucketV1AccessTokens     = []byte("access_tokens")
	bucketV1ItemRefreshes    = []byte("item_refreshes")
	bucketV1ItemPublicTokens = []byte("item_public_tokens")

	keyVersion = []byte("version")
	// keyMigration holds a storagev1.MigrationCursor while a migration
	// runs over several transactions.
	keyMigration = []byte("migration")
)

// schemaVersion is the layout this code writes.
const schemaVersion = 2

// allBuckets is every bucket; Open creates each one.
var allBuckets = [][]byte{
	bucketMeta,
	bucketLinkTokens,
	bucketLinkTokenRenewals,
	bucketHostedChecks,
	bucketLinkTokenChecks,
	bucketSessions,
	bucketSessionStarts,
	bucketItems,
	bucketUserItems,
	bucketInstitutionItems,
	bucketPublicTokenUses,
	bucketExchangeClaims,
	bucketPendingLinks,
	bucketRefreshQueue,
	bucketWebhooks,
	bucketWebhookDeliveries,
	bucketLeases,
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

// timeOf reads be64(t) back: t from the first 8 bytes of b.
func timeOf(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63)))
}

// strPrefix is str(s), the prefix of every key of one id in an index.
func strPrefix(s string) []byte {
	return appendStr(make([]byte, 0, 4+len(s)), s)
}

// strTimeKey is str(s) be64(t) id: a user_items or institution_items key.
func strTimeKey(s string, t time.Time, id string) []byte {
	b := make([]byte, 0, 4+len(s)+8+len(id))
	b = appendStr(b, s)
	b = appendTime(b, t)
	return append(b, id...)
}

// timeKey is be64(t) id: a session_starts or refresh_queue key.
func timeKey(t time.Time, id string) []byte {
	return append(appendTime(make([]byte, 0, 8+len(id)), t), id...)
}

// publicTokenKey is the public_token_uses and exchange_claims key of a
// public token.
func publicTokenKey(publicToken string) []byte {
	sum := sha256.Sum256([]byte(publicToken))
	return sum[:]
}

// pendingLinkKey is the pending_links key of clientUserID's claim at
// claimKey (a public token's SHA-256) whose link is at institutionID.
func pendingLinkKey(institutionID, clientUserID string, claimKey []byte) []byte {
	b := make([]byte, 0, 8+len(institutionID)+len(clientUserID)+len(claimKey))
	return append(appendStr(appendStr(b, institutionID), clientUserID), claimKey...)
}

// webhookKey is the webhooks key of a webhook received at t with body.
func webhookKey(t time.Time, body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(appendTime(make([]byte, 0, 8+sha256.Size), t), sum[:]...)
}

// keysWithPrefix returns copies of the keys of bucket that start with
// prefix, so that the caller may delete them (deleting under a cursor can
// make it skip keys).
func keysWithPrefix(c interface {
	Seek([]byte) ([]byte, []byte)
	Next() ([]byte, []byte)
}, prefix []byte) [][]byte {
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

// Index corruption, which only a bug or a damaged file can cause.
var (
	errMalformedKey  = errors.New("malformed index key")
	errDanglingIndex = errors.New("index entry names a missing record")
)
