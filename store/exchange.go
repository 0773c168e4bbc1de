package store

import (
	"bytes"
	"context"
	"slices"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/records"
)

// A claim record (storagev1.ExchangeClaim) is in one of three states:
//   - held: owner is set and expires_at is after now;
//   - lapsed: owner is set and expires_at has passed (its holder vanished);
//   - released: owner is empty, kept only because unknown is set.
//
// unknown is sticky: once a claim ended without an outcome, every later
// claimant learns that Plaid may have spent the token (ClaimResult.Earlier)
// until PutItem records the use. A claim released with a definite outcome
// and no unknown past is deleted.

// ClaimExchange claims the exchange of c.PublicToken for c.Owner until
// c.Now+c.TTL; see linkd.ClaimResult. It returns an EINVALID *linkd.Error
// naming public_token, client_user_id or owner when one is missing, and
// ECONFLICT when a claim or a use of the token belongs to another user.
func (db *DB) ClaimExchange(ctx context.Context, c linkd.ExchangeClaim) (linkd.ClaimResult, error) {
	if c.PublicToken == "" {
		return linkd.ClaimResult{}, linkd.InvalidField("public_token", "public_token is required")
	}
	if err := checkID("client_user_id", c.ClientUserID); err != nil {
		return linkd.ClaimResult{}, err
	}
	if err := checkID("owner", c.Owner); err != nil {
		return linkd.ClaimResult{}, err
	}
	var link *storagev1.PendingLink
	if c.Link != nil {
		if err := checkID("institution_id", c.Link.InstitutionID); err != nil {
			return linkd.ClaimResult{}, err
		}
		link = records.NewPendingLink(c.Link)
	}
	var res linkd.ClaimResult
	err := db.update(ctx, "claim exchange", func(tx *bbolt.Tx) error {
		var err error
		res, err = claimExchange(tx, c, link)
		return err
	})
	return res, err
}

// claimExchange is ClaimExchange in tx; link is c.Link as kept.
func claimExchange(tx *bbolt.Tx, c linkd.ExchangeClaim, link *storagev1.PendingLink) (linkd.ClaimResult, error) {
	key := publicTokenKey(c.PublicToken)
	var use storagev1.PublicTokenUse
	if found, err := get(tx, bucketPublicTokenUses, key, &use); err != nil {
		return linkd.ClaimResult{}, err
	} else if found {
		item := new(linkdv1.Item)
		if err := getItem(tx, use.GetItemId(), item); err != nil {
			return linkd.ClaimResult{}, err
		}
		if item.GetClientUserId() != c.ClientUserID {
			return linkd.ClaimResult{}, linkd.Errorf(linkd.ECONFLICT, "public_token was exchanged for another user")
		}
		return linkd.ClaimResult{Item: item}, nil
	}
	claim := new(storagev1.ExchangeClaim)
	found, err := get(tx, bucketExchangeClaims, key, claim)
	if err != nil {
		return linkd.ClaimResult{}, err
	}
	until := c.Now.Add(c.TTL)
	switch {
	case !found:
		claim = &storagev1.ExchangeClaim{ClientUserId: c.ClientUserID, StartedAt: timestamppb.New(c.Now)}
	case claim.GetClientUserId() != c.ClientUserID:
		return linkd.ClaimResult{}, linkd.Errorf(linkd.ECONFLICT, "public_token is being exchanged for another user")
	case claim.GetOwner() == c.Owner:
		// Re-entrant: the holder asks again (a retry inside one process).
	case claim.GetOwner() != "" && claim.GetExpiresAt().AsTime().After(c.Now):
		return linkd.ClaimResult{HeldBy: claim.GetOwner(), HeldUntil: claim.GetExpiresAt().AsTime()}, nil
	case claim.GetOwner() != "":
		// Lapsed: its holder vanished, maybe after calling Plaid.
		claim.Unknown = true
	}
	if link != nil {
		if held, err := pendingRepeat(tx, c, key); err != nil || held.Repeats {
			return held, err
		}
	}
	if claim.GetOwner() != c.Owner {
		claim.Owner = c.Owner
		claim.Attempts++
	}
	claim.ExpiresAt = timestamppb.New(until)
	if err := setClaimLink(tx, key, claim, link); err != nil {
		return linkd.ClaimResult{}, err
	}
	if err := put(tx, bucketExchangeClaims, key, claim); err != nil {
		return linkd.ClaimResult{}, err
	}
	return linkd.ClaimResult{Claimed: true, Earlier: claim.GetUnknown()}, nil
}

// pendingRepeat looks for another public token's live claim at c's
// institution whose link c's repeats (linkd.PendingDuplicateOf); key is
// c's token's. It returns that claim as ClaimResult.Repeats, or the zero
// result when there is none.
func pendingRepeat(tx *bbolt.Tx, c linkd.ExchangeClaim, key []byte) (linkd.ClaimResult, error) {
	prefix := strPrefix(c.Link.InstitutionID)
	if !c.Link.AllUsers {
		prefix = appendStr(prefix, c.ClientUserID)
	}
	var pending []*linkdv1.Item
	var holders []*storagev1.ExchangeClaim
	var stale [][]byte
	cur := tx.Bucket(bucketPendingLinks).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		if len(k) < len(key) {
			return linkd.ClaimResult{}, internal("pending link", errMalformedKey)
		}
		sum := k[len(k)-len(key):]
		if bytes.Equal(sum, key) {
			continue
		}
		other := new(storagev1.ExchangeClaim)
		found, err := get(tx, bucketExchangeClaims, sum, other)
		if err != nil {
			return linkd.ClaimResult{}, err
		}
		// An entry whose claim is gone, or no longer holds this link, is
		// stale: a linkd from before pending links deleted or rewrote the
		// claim (a rollback, or a backup it opened) and left the entry.
		// It holds nobody back, and goes.
		if !found || other.GetLink() == nil ||
			!bytes.Equal(k, pendingLinkKey(other.GetLink().GetInstitutionId(), other.GetClientUserId(), sum)) {
			stale = append(stale, bytes.Clone(k))
			continue
		}
		if other.GetOwner() == "" || !other.GetExpiresAt().AsTime().After(c.Now) {
			continue // released, or lapsed: nothing waits for a vanished holder
		}
		pending = append(pending, records.PendingItem(other.GetClientUserId(), other.GetLink()))
		holders = append(holders, other)
	}
	for _, k := range stale {
		if err := tx.Bucket(bucketPendingLinks).Delete(k); err != nil {
			return linkd.ClaimResult{}, err
		}
	}
	old := linkd.PendingDuplicateOf(pending, c.ClientUserID, c.Link.InstitutionID, c.Link.Accounts, c.Link.AllUsers)
	if old == nil {
		return linkd.ClaimResult{}, nil
	}
	h := holders[slices.Index(pending, old)]
	return linkd.ClaimResult{HeldBy: h.GetOwner(), HeldUntil: h.GetExpiresAt().AsTime(), Repeats: true}, nil
}

// setClaimLink makes link the link of claim (the record at key, written
// by the caller), moving its pending_links entry; nil removes both.
func setClaimLink(tx *bbolt.Tx, key []byte, claim *storagev1.ExchangeClaim, link *storagev1.PendingLink) error {
	b := tx.Bucket(bucketPendingLinks)
	user := claim.GetClientUserId()
	if old := claim.GetLink(); old != nil && old.GetInstitutionId() != link.GetInstitutionId() {
		if err := b.Delete(pendingLinkKey(old.GetInstitutionId(), user, key)); err != nil {
			return err
		}
	}
	claim.Link = link
	if link == nil {
		return nil
	}
	return b.Put(pendingLinkKey(link.GetInstitutionId(), user, key), nil)
}

// deleteClaim deletes the claim at key (a public token's SHA-256), if
// any, with its pending_links entry.
func deleteClaim(tx *bbolt.Tx, key []byte) error {
	claim := new(storagev1.ExchangeClaim)
	if found, err := get(tx, bucketExchangeClaims, key, claim); err != nil || !found {
		return err
	}
	if err := setClaimLink(tx, key, claim, nil); err != nil {
		return err
	}
	return tx.Bucket(bucketExchangeClaims).Delete(key)
}

// RenewExchangeClaim extends owner's claim on publicToken to now+ttl. It
// returns an ECONFLICT *linkd.Error when owner no longer holds it (taken
// over, released, or the token spent on an Item).
func (db *DB) RenewExchangeClaim(ctx context.Context, publicToken, owner string, now time.Time, ttl time.Duration) error {
	if publicToken == "" {
		return linkd.InvalidField("public_token", "public_token is required")
	}
	if err := checkID("owner", owner); err != nil {
		return err
	}
	return db.update(ctx, "renew exchange claim", func(tx *bbolt.Tx) error {
		key := publicTokenKey(publicToken)
		claim := new(storagev1.ExchangeClaim)
		if found, err := get(tx, bucketExchangeClaims, key, claim); err != nil {
			return err
		} else if !found || claim.GetOwner() != owner {
			return linkd.Errorf(linkd.ECONFLICT, "exchange claim is no longer held by this process")
		}
		claim.ExpiresAt = timestamppb.New(now.Add(ttl))
		return put(tx, bucketExchangeClaims, key, claim)
	})
}

// ReleaseExchangeClaim ends owner's claim on publicToken: with
// outcomeUnknown (or when an earlier claim's outcome was unknown) the
// record stays, released, so the next claimant learns an exchange may have
// happened; otherwise it is deleted. A claim owner does not hold is left
// alone.
func (db *DB) ReleaseExchangeClaim(ctx context.Context, publicToken, owner string, outcomeUnknown bool) error {
	if publicToken == "" {
		return linkd.InvalidField("public_token", "public_token is required")
	}
	if err := checkID("owner", owner); err != nil {
		return err
	}
	return db.update(ctx, "release exchange claim", func(tx *bbolt.Tx) error {
		key := publicTokenKey(publicToken)
		claim := new(storagev1.ExchangeClaim)
		if found, err := get(tx, bucketExchangeClaims, key, claim); err != nil || !found || claim.GetOwner() != owner {
			return err
		}
		if err := setClaimLink(tx, key, claim, nil); err != nil {
			return err
		}
		if !outcomeUnknown && !claim.GetUnknown() {
			return tx.Bucket(bucketExchangeClaims).Delete(key)
		}
		claim.Owner, claim.Unknown = "", true
		return put(tx, bucketExchangeClaims, key, claim)
	})
}
