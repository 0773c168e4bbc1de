package linkd

import (
	"context"
	"time"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Store keeps linkd's state. It only keeps records: the rules about what a
// record may become (status precedence, how a redirect merges into a
// session) are pure functions of this package that the service passes in
// as update functions. Every method is one transaction, durable (committed
// and synced) before it returns, and returns an *Error: EINVALID naming the
// field for an id that is empty or too long, ENOTFOUND for a missing
// record, ECONFLICT for a clash, EUNAVAILABLE for a transient failure (the
// database cannot be reached, the disk is full, the context ended before
// the transaction began) and EINTERNAL otherwise.
//
// Several Store handles may share one backend (replicas on one Postgres):
// every promise below holds across handles, not only within one. The
// conformance suite in package storetest checks each of them; every backend
// runs it.
//
// Update functions (the fn arguments) may run more than once for one call
// (a backend retries serialization failures, bbolt's group commit reruns a
// failed batch): they must depend only on their arguments and must not
// keep what they are given. A function reports whether it changed the
// record; a record it leaves unchanged is not written.
type Store interface {
	// PutLinkToken records a link token linkd issued. ECONFLICT when the
	// token is recorded already.
	PutLinkToken(ctx context.Context, t *storagev1.StoredLinkToken) error
	// GetLinkToken returns a link token linkd issued, or ENOTFOUND.
	GetLinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error)
	// RenewLinkToken records fresh as the renewal of the dead token dead
	// (storing fresh as a link token too) unless dead was renewed already
	// with a token that has not expired at now, and returns the renewal
	// that stands: fresh, or the earlier one. ENOTFOUND when dead is not
	// recorded.
	RenewLinkToken(ctx context.Context, dead string, fresh *storagev1.StoredLinkToken, now time.Time) (*storagev1.StoredLinkToken, error)
	// LinkTokenRenewal returns the unexpired renewal of a dead token, or
	// ENOTFOUND when there is none.
	LinkTokenRenewal(ctx context.Context, dead string, now time.Time) (*storagev1.StoredLinkToken, error)
	// HostedLinkTokensDue returns up to limit link tokens whose
	// hosted_check_at is due at now, the longest due first, from an index
	// that PutLinkToken and RenewLinkToken keep for tokens stored with
	// hosted_check_at (Hosted Link tokens, whose webhooks may be lost).
	HostedLinkTokensDue(ctx context.Context, now time.Time, limit int) ([]*storagev1.StoredLinkToken, error)
	// SetHostedLinkTokenCheck moves a token's check to at, or ends its
	// checks when at is zero (the record's hosted_check_at follows).
	// ENOTFOUND when the token is not recorded.
	SetHostedLinkTokenCheck(ctx context.Context, linkToken string, at time.Time) error
	// SettleLinkToken records settled as the token's final answer (the
	// record's settled), unless it has one already: the first stands.
	// ENOTFOUND when the token is not recorded.
	SettleLinkToken(ctx context.Context, linkToken string, settled *storagev1.LinkTokenSettlement) error

	// UpdateLinkSession applies fn to the session linkSessionID (a new,
	// empty session carrying only its id when there is none yet) and
	// stores the result when fn reports a change. A session it creates is
	// counted on its link token (link_token, when recorded: the token's
	// sessions) in the same transaction, and refused with ERATELIMIT
	// (linkd.CountLinkTokenSession) when the token created
	// MaxSessionsPerLinkToken already; across handles too. It returns the
	// session as stored after the call, and fn's error unchanged.
	UpdateLinkSession(ctx context.Context, linkSessionID string, fn func(s *linkdv1.LinkSession) (bool, error)) (*linkdv1.LinkSession, error)
	// GetLinkSession returns a Link session, or ENOTFOUND.
	GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error)
	// LinkSessions returns one page of the sessions that started in
	// [since, until) (SessionStart), in start order, at most limit of them
	// (a backend may cap limit), and the token of the next page, "" after
	// the last. An empty pageToken starts at the first.
	LinkSessions(ctx context.Context, since, until time.Time, pageToken string, limit int) (sessions []*linkdv1.LinkSession, next string, err error)

	// ClaimExchange claims the exchange of a public token for one owner (a
	// process) until now+ttl, before Plaid is called. See ExchangeClaim.
	// A claim with a Link is not granted while another token's live claim
	// holds a link it repeats (ClaimResult.Repeats), across handles too:
	// of two such claims at once exactly one is granted. ECONFLICT when a
	// claim or a use of the token belongs to another user; EINVALID naming
	// institution_id when the Link's cannot be kept.
	ClaimExchange(ctx context.Context, c ExchangeClaim) (ClaimResult, error)
	// RenewExchangeClaim extends owner's live claim on publicToken to
	// now+ttl. ECONFLICT when owner no longer holds it (another owner took
	// it over after it expired, or the token was spent on an Item).
	RenewExchangeClaim(ctx context.Context, publicToken, owner string, now time.Time, ttl time.Duration) error
	// ReleaseExchangeClaim ends owner's claim. With outcomeUnknown the mark
	// stays, expired, so that the next claimant learns an earlier exchange
	// may have happened (ClaimResult.Earlier); otherwise the mark is
	// removed (the exchange surely did not happen). A claim owner no
	// longer holds is left alone; that is not an error.
	ReleaseExchangeClaim(ctx context.Context, publicToken, owner string, outcomeUnknown bool) error
	// ItemForPublicToken returns the Item a public token was exchanged
	// for, or ENOTFOUND. Tokens are looked up by their SHA-256.
	ItemForPublicToken(ctx context.Context, publicToken string) (*linkdv1.Item, error)

	// PutItem stores a new Item with its sealed access token and, in the
	// same transaction, what came with it (see NewItem). ECONFLICT when
	// the item_id exists or the public token was spent on another Item.
	PutItem(ctx context.Context, n NewItem) (*linkdv1.Item, error)
	// GetItem returns an Item, or ENOTFOUND.
	GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error)
	// ListItems returns a user's Items, oldest first; none is not an error.
	ListItems(ctx context.Context, clientUserID string) ([]*linkdv1.Item, error)
	// ItemsAtInstitution returns every user's Items at an institution,
	// oldest first, from an index; none is not an error.
	ItemsAtInstitution(ctx context.Context, institutionID string) ([]*linkdv1.Item, error)
	// ItemsAfter returns up to limit Items (a backend may cap limit) whose
	// item_id sorts after after ("" starts at the first), in the
	// backend's item_id order, so that a background job walks every Item
	// a page at a time with the last item_id as its cursor, across
	// restarts and handles. Items added or removed during a walk may or
	// may not be seen; none left is an empty page.
	ItemsAfter(ctx context.Context, after string, limit int) ([]*linkdv1.Item, error)
	// UpdateItem applies fn to an Item and stores it when fn reports a
	// change, returning the Item as stored; ENOTFOUND when there is none.
	UpdateItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error)
	// AccessToken unseals and returns an Item's access token, or ENOTFOUND.
	AccessToken(ctx context.Context, itemID string) (AccessToken, error)
	// DeleteItem deletes an Item, its sealed token, its queued refresh and
	// its index entries; ENOTFOUND when there is none.
	DeleteItem(ctx context.Context, itemID string) error
	// DeleteUserRecords erases a user once its Items are gone at Plaid, in
	// one transaction: its Items (each as DeleteItem), their webhooks, its
	// Link sessions (and any naming its Items), its link tokens with their
	// renewals, and its exchange claims. It returns what it deleted
	// (nothing left is not an error: a second call counts zeros), and
	// EPRECONDITION, deleting nothing, when the user has an Item not in
	// removedItemIDs (one linked since the caller listed them).
	DeleteUserRecords(ctx context.Context, clientUserID string, removedItemIDs []string) (RecordCounts, error)

	// DueItemRefreshes returns up to limit item_ids whose refresh (queued
	// by NewItem.Refresh) is due at now, oldest first.
	DueItemRefreshes(ctx context.Context, now time.Time, limit int) ([]string, error)
	// DeferItemRefresh moves an Item's queued refresh to at (a failed
	// refresh is tried again later); no queued refresh is not an error.
	DeferItemRefresh(ctx context.Context, itemID string, at time.Time) error
	// UpdateRefreshedItem applies fn to an Item, as UpdateItem, and removes
	// its queued refresh in the same transaction.
	UpdateRefreshedItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error)

	// RecordWebhook keeps a verified Plaid webhook delivery once: a
	// deliveryID (the hash of its signed JWT) recorded before is ECONFLICT
	// and changes nothing, across handles and restarts. When the webhook
	// names a stored Item and fn is not nil, fn is applied to that Item in
	// the same transaction; the Item is returned (nil when none was
	// changed, or the webhook names no stored Item).
	RecordWebhook(ctx context.Context, w *storagev1.StoredWebhook, deliveryID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error)
	// ListWebhooks returns one page of recorded webhooks, oldest first, at
	// most limit, and the next page's token ("" after the last).
	ListWebhooks(ctx context.Context, pageToken string, limit int) (webhooks []*storagev1.StoredWebhook, next string, err error)

	// Prune deletes what is older than each cutoff (a zero cutoff keeps
	// all of its kind), in small transactions, and returns what it
	// deleted.
	Prune(ctx context.Context, c PruneCutoffs) (PruneResult, error)
	// ResealAccessTokens re-seals the access tokens not sealed with the
	// sealer's current key of the Items after the item_id after, in
	// item_id order, up to batch of them, and returns how many it
	// re-sealed and the item_id to pass as after to go on: "" once this
	// pass (begun at after "") reached the last Item. A pass re-seals
	// every token sealed under an older key when it began, but those
	// another handle is re-sealing at the same moment (its own pass takes
	// them), each batch costing what it reads after the last, not the
	// whole table before it. A batch may re-seal none and still go on.
	// Safe to run from several handles at once.
	ResealAccessTokens(ctx context.Context, after string, batch int) (resealed int, next string, err error)
	// SealedKeyIDs returns the ids of the master keys that sealed the
	// stored access tokens, each with one item_id it sealed, so that a
	// start-up check can prove the keyring opens every one.
	SealedKeyIDs(ctx context.Context) (map[string]string, error)
	// TryLease takes or renews the named lease for owner until now+ttl
	// and reports whether owner holds it: false while another owner's
	// lease is live. Background jobs run only while their lease is held.
	// A ttl of 0 releases a lease its owner holds (it expires at now, so
	// anyone may take it at once); EINVALID naming ttl when negative.
	TryLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	// SetLeaseCursor records cursor (where the job's walk stands; "" for
	// its start) with the named lease and reports whether owner holds it:
	// false, recording nothing, when the lease is another owner's or
	// there is none. The cursor outlives the owner: TryLease keeps it
	// when it renews the lease or another owner takes it over.
	SetLeaseCursor(ctx context.Context, name, owner, cursor string) (bool, error)
	// LeaseCursor returns the cursor last recorded with the named lease;
	// "" when none was.
	LeaseCursor(ctx context.Context, name string) (string, error)
	// Check verifies the backend's consistency and reachability (bbolt's
	// page check, a Postgres round trip). EUNAVAILABLE when the backend
	// cannot be reached, EINTERNAL when it is damaged.
	Check(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// ExchangeClaim asks to claim the exchange of PublicToken.
type ExchangeClaim struct {
	PublicToken  string
	ClientUserID string
	// Owner names the claiming process; unique per process start.
	Owner string
	// Now and TTL set the lease: it is held until Now+TTL unless renewed.
	Now time.Time
	TTL time.Duration
	// Link, when set, is the connection the exchange would create. It is
	// kept with the claim while the claim is held (until PutItem spends
	// the token, ReleaseExchangeClaim, or the lease lapses), so that the
	// duplicate check of a link arriving meanwhile, on any replica, waits
	// for its outcome rather than missing it.
	Link *PendingLink
}

// PendingLink is a connection being exchanged: a connected redirect's
// institution and accounts. Claims compare links by
// PendingDuplicateOf, the pending link as an Item of the claim's user.
type PendingLink struct {
	InstitutionID string
	// Accounts are compared, and kept, by name and mask only.
	Accounts []*linkdv1.Account
	// AllUsers compares with every user's pending links, not only the
	// claim's user's (the duplicate policy across users).
	AllUsers bool
}

// ClaimResult is what ClaimExchange found. Exactly one holds:
//   - Item is set: the token was exchanged already, for that Item.
//   - Claimed: the caller holds the claim and must call Plaid, then PutItem
//     or ReleaseExchangeClaim. Earlier reports that an earlier claim ended
//     without an outcome (a released unknown outcome, or an expired lease
//     whose holder vanished): Plaid may have spent the token already.
//   - HeldBy is set: another owner's live claim holds the token until
//     HeldUntil; the caller waits and claims again. With Repeats, the
//     live claim (HeldBy's, until HeldUntil) is another public token's,
//     whose link the claim's Link repeats: the caller waits for that
//     exchange's outcome, claims again, and then checks the stored Items.
type ClaimResult struct {
	Item      *linkdv1.Item
	Claimed   bool
	Earlier   bool
	HeldBy    string
	HeldUntil time.Time
	Repeats   bool
}

// NewItem is what PutItem stores in one transaction.
type NewItem struct {
	// Item is the new Item; created_at is filled in when unset.
	Item *linkdv1.Item
	// AccessToken is sealed with the store's Sealer and kept apart.
	AccessToken AccessToken
	// PublicToken, when set, is recorded (by hash) as spent on the Item,
	// and any claim on it is removed.
	PublicToken string
	// Session, when set, is applied to the Item's link_session_id session
	// (created when missing) in the same transaction, after the session's
	// item_id is set to the Item unless it names another stored Item. A
	// session it creates is counted on its link token but never refused:
	// an Item Plaid billed is always stored.
	Session func(s *linkdv1.LinkSession) (bool, error)
	// SessionKey, when set, is the key of the session Session applies to
	// (and whose item_id is set), instead of the Item's link_session_id: a
	// session filed apart from another user's record of the same id (see
	// service.sessionKey).
	SessionKey string
	// RefreshAt, when not zero, queues a refresh of the Item's accounts
	// and institution from Plaid, due then (DueItemRefreshes).
	RefreshAt time.Time
}

// PruneCutoffs says what Prune deletes: sessions linkd last saw
// (SessionLastSeen, linkd's clock) before Sessions, webhooks received
// before Webhooks, webhook delivery ids recorded before Deliveries, and
// link tokens that expired before LinkTokens. A zero time deletes nothing
// of its kind. Sessions are found by their start (SessionStart, the
// device's clock): those that started before Sessions or after the
// store's clock; one whose start lies between (a device clock ahead by
// less than the session's age) is pruned once Sessions passes its start,
// late by at most how far that clock ran ahead.
type PruneCutoffs struct {
	Sessions, Webhooks, Deliveries, LinkTokens time.Time
}

// PruneResult counts what Prune deleted.
type PruneResult struct {
	Sessions, Webhooks, Deliveries, LinkTokens int
}

// Sealer seals access tokens for storage and opens them again. Every
// backend seals through one, so a token sealed by one backend opens in
// another (linkd migrate copies sealed tokens as they are).
type Sealer interface {
	// SealAccessToken encrypts token under the current key, bound to
	// itemID. EINTERNAL when randomness fails.
	SealAccessToken(itemID string, token AccessToken) (*storagev1.SealedAccessToken, error)
	// UnsealAccessToken opens a sealed token of itemID. EINTERNAL naming
	// the key id when the key is missing or the record does not open.
	UnsealAccessToken(itemID string, sealed *storagev1.SealedAccessToken) (AccessToken, error)
	// CurrentKeyID is the id of the key new tokens are sealed with.
	CurrentKeyID() string
}

// ResealPass runs one pass of ResealAccessTokens over every Item, batch
// at a time, and returns how many tokens it re-sealed, also when a batch
// fails (its error).
func ResealPass(ctx context.Context, s interface {
	ResealAccessTokens(ctx context.Context, after string, batch int) (int, string, error)
}, batch int) (int, error) {
	total := 0
	for after := ""; ; {
		n, next, err := s.ResealAccessTokens(ctx, after, batch)
		total += n
		if err != nil || next == "" {
			return total, err
		}
		after = next
	}
}

// Record is one record of a store as stored, for copying one backend into
// another (linkd migrate): access tokens stay sealed, public tokens stay
// hashed. Exactly one field is set.
type Record struct {
	LinkToken *storagev1.StoredLinkToken
	Session   *linkdv1.LinkSession
	Item      *ItemRecord
	Webhook   *WebhookRecord
}

// ItemRecord is an Item with its sealed access token and the SHA-256
// hashes of the public tokens spent on it.
type ItemRecord struct {
	Item              *linkdv1.Item
	Sealed            *storagev1.SealedAccessToken
	PublicTokenHashes [][]byte
}

// WebhookRecord is a recorded webhook with the key it is stored under, so
// that copying it twice keeps one.
type WebhookRecord struct {
	Key     []byte
	Webhook *storagev1.StoredWebhook
}

// RecordCounts counts a store's records by kind.
type RecordCounts struct {
	LinkTokens, Sessions, Items, Webhooks int
}

// Exporter is a store whose records can be read out as they are.
type Exporter interface {
	// Export calls fn with every record, in no particular order, from one
	// consistent snapshot.
	Export(ctx context.Context, fn func(Record) error) error
}

// Importer is a store that takes records as they are.
type Importer interface {
	// Import writes records in one transaction; a record already present
	// (same key) is left as it is, so importing twice is safe.
	Import(ctx context.Context, records []Record) error
	// CountRecords counts the store's records by kind.
	CountRecords(ctx context.Context) (RecordCounts, error)
}

// SessionID returns the key of the session PutItem files the Item in:
// SessionKey, or the Item's link_session_id; "" for none.
func (n NewItem) SessionID() string {
	if n.SessionKey != "" {
		return n.SessionKey
	}
	return n.Item.GetLinkSessionId()
}
