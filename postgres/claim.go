package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/records"
)

// ClaimExchange claims the exchange of a public token for c.Owner until
// c.Now+c.TTL, unless the token was spent on an Item (then it returns the
// Item) or another owner's claim is live at c.Now (then it returns that
// owner and when the claim ends), or, with c.Link, another token's live
// claim holds a link c.Link repeats (then it returns that claim, with
// Repeats). Taking over a claim that ended without an outcome sets
// Earlier. Two processes claiming at once queue on the claim's row
// (INSERT ... ON CONFLICT DO NOTHING, then SELECT ... FOR UPDATE): exactly
// one gets Claimed. Two claims whose links may repeat each other queue on
// a row of link_gates before either looks for the other's (a plain
// SELECT of another token's row would miss an insert not yet committed):
// the second sees the first's link and waits. It returns EINVALID naming
// public_token, client_user_id, owner, ttl or institution_id, and
// ECONFLICT when the claim or the use of the token belongs to another
// user.
func (db *DB) ClaimExchange(ctx context.Context, c linkd.ExchangeClaim) (linkd.ClaimResult, error) {
	if err := checkClaim(c.PublicToken, c.Owner, c.TTL); err != nil {
		return linkd.ClaimResult{}, err
	}
	if err := checkID("client_user_id", c.ClientUserID); err != nil {
		return linkd.ClaimResult{}, err
	}
	var inst *string
	var link []byte
	if c.Link != nil {
		if err := checkID("institution_id", c.Link.InstitutionID); err != nil {
			return linkd.ClaimResult{}, err
		}
		if err := checkInstitutionID(c.Link.InstitutionID); err != nil {
			return linkd.ClaimResult{}, err
		}
		var err error
		if link, err = proto.Marshal(records.NewPendingLink(c.Link)); err != nil {
			return linkd.ClaimResult{}, linkd.Errorf(linkd.EINTERNAL, "encode pending link: %v", err)
		}
		inst = &c.Link.InstitutionID
	}
	sum := publicTokenSum(c.PublicToken)
	now, until := ns(c.Now), ns(c.Now.Add(c.TTL))
	var res linkd.ClaimResult
	err := db.inTx(ctx, "claim exchange", func(tx pgx.Tx) error {
		res = linkd.ClaimResult{}
		inserted, spentOn, repeats, err := claimRound(ctx, tx, c, sum, now, until, inst, link)
		if err != nil {
			return err
		}
		if spentOn.item != "" {
			if spentOn.user != c.ClientUserID {
				return linkd.Errorf(linkd.ECONFLICT, "public_token was exchanged for another user")
			}
			if res.Item, err = getItem(ctx, tx, `SELECT record FROM items WHERE item_id = $1`, spentOn.item); err != nil {
				return err
			}
			return errRollback // spent: no claim is taken
		}
		if inserted {
			if repeats.Repeats {
				res = repeats
				return errRollback // the claim's row goes
			}
			res.Claimed = true
			return nil
		}
		var user, owner string
		var expires int64
		var earlier bool
		err = tx.QueryRow(ctx, `
			SELECT client_user_id, owner, expires_ns, earlier FROM exchange_claims
			WHERE public_token_sha256 = $1 FOR UPDATE`, sum).Scan(&user, &owner, &expires, &earlier)
		if errors.Is(err, pgx.ErrNoRows) {
			// Released or spent between the insert and the select: a
			// conflict like any other race, and the retry sees which.
			return errRace
		} else if err != nil {
			return err
		}
		switch {
		case user != c.ClientUserID:
			return linkd.Errorf(linkd.ECONFLICT, "public_token is being exchanged for another user")
		case owner == c.Owner && expires > now:
			// The owner claims again what it holds: it still holds it.
		case owner != "" && expires > now:
			res.HeldBy, res.HeldUntil = owner, time.Unix(0, expires).UTC()
			return nil
		default:
			// The claim ended without an outcome: released unknown, or
			// expired while its holder was gone.
			earlier = true
		}
		if repeats.Repeats {
			// Found before this row was locked, under the gate: no
			// repeating link can have been claimed since.
			res = repeats
			return errRollback
		}
		_, err = tx.Exec(ctx, `
			UPDATE exchange_claims SET owner = $2, expires_ns = $3, earlier = $4, institution_id = $5, link = $6
			WHERE public_token_sha256 = $1`,
			sum, c.Owner, until, earlier, inst, link)
		res.Claimed, res.Earlier = true, earlier
		return err
	})
	if err != nil {
		return linkd.ClaimResult{}, err
	}
	return res, nil
}

// spentUse is the public_token_uses row of a spent token: its Item and
// user; item is "" when the token is not spent.
type spentUse struct{ item, user string }

// claimRound sends, in one round trip, what every claim asks first; the
// statements run in order, each on a snapshot of its own under READ
// COMMITTED:
//  1. with a link, the link's gate (linkGateStripe): it serializes the
//     claims whose links may repeat each other, and is locked before the
//     search for pending links (4), which thus sees any link claimed by
//     the transaction this one queued behind (under SERIALIZABLE, a link
//     its older snapshot misses is a serialization failure), and before
//     the claim's row, so that two claims never lock the two in opposite
//     orders;
//  2. the claim's row, inserted unless there is one (inserted reports
//     which): a PutItem spending the token deletes it in the transaction
//     that records the use, so once this insert has waited for such a
//     PutItem, the use is visible to the next statement (under
//     SERIALIZABLE the race is a serialization failure instead);
//  3. the token's use (spentOn);
//  4. with a link, the pending links of the gate: another public token's
//     live claim whose link c.Link repeats (linkd.PendingDuplicateOf) is
//     returned as ClaimResult.Repeats.
func claimRound(ctx context.Context, tx pgx.Tx, c linkd.ExchangeClaim, sum []byte, now, until int64, inst *string, link []byte) (inserted bool, spentOn spentUse, repeats linkd.ClaimResult, err error) {
	var b pgx.Batch
	if c.Link != nil {
		b.Queue(`SELECT stripe FROM link_gates WHERE stripe = $1 FOR UPDATE`, linkGateStripe(c.ClientUserID, c.Link))
	}
	b.Queue(`
		INSERT INTO exchange_claims (public_token_sha256, client_user_id, owner, expires_ns, earlier, institution_id, link)
		VALUES ($1, $2, $3, $4, false, $5, $6) ON CONFLICT (public_token_sha256) DO NOTHING`,
		sum, c.ClientUserID, c.Owner, until, inst, link)
	b.Queue(`SELECT item_id, client_user_id FROM public_token_uses WHERE public_token_sha256 = $1`, sum)
	if c.Link != nil {
		// Only the claim's user's, unless duplicates count across users.
		user := &c.ClientUserID
		if c.Link.AllUsers {
			user = nil
		}
		b.Queue(`
			SELECT client_user_id, owner, expires_ns, link FROM exchange_claims
			WHERE institution_id = $1 AND ($2::text IS NULL OR client_user_id = $2)
			  AND public_token_sha256 <> $3 AND owner <> '' AND expires_ns > $4`,
			c.Link.InstitutionID, user, sum, now)
	}
	br := tx.SendBatch(ctx, &b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if c.Link != nil {
		if _, err = br.Exec(); err != nil {
			return
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return
	}
	inserted = tag.RowsAffected() == 1
	if err = br.QueryRow().Scan(&spentOn.item, &spentOn.user); errors.Is(err, pgx.ErrNoRows) {
		err = nil
	} else if err != nil {
		return
	}
	if c.Link != nil {
		repeats, err = pendingRepeat(br, c)
	}
	return
}

// pendingRepeat reads claimRound's pending links and returns the one
// c.Link repeats as ClaimResult.Repeats, or the zero result.
func pendingRepeat(br pgx.BatchResults, c linkd.ExchangeClaim) (linkd.ClaimResult, error) {
	rows, err := br.Query()
	if err != nil {
		return linkd.ClaimResult{}, err
	}
	type holder struct {
		owner   string
		expires int64
	}
	var pending []*linkdv1.Item
	var holders []holder
	var pendingUser, owner string
	var expires int64
	var rec []byte
	_, err = pgx.ForEachRow(rows, []any{&pendingUser, &owner, &expires, &rec}, func() error {
		l := new(storagev1.PendingLink)
		if err := proto.Unmarshal(rec, l); err != nil {
			return fmt.Errorf("decode pending link: %w", err)
		}
		pending = append(pending, records.PendingItem(pendingUser, l))
		holders = append(holders, holder{owner, expires})
		return nil
	})
	if err != nil {
		return linkd.ClaimResult{}, err
	}
	old := linkd.PendingDuplicateOf(pending, c.ClientUserID, c.Link.InstitutionID, c.Link.Accounts, c.Link.AllUsers)
	if old == nil {
		return linkd.ClaimResult{}, nil
	}
	h := holders[slices.Index(pending, old)]
	return linkd.ClaimResult{HeldBy: h.owner, HeldUntil: time.Unix(0, h.expires).UTC(), Repeats: true}, nil
}

// linkGateStripes is how many rows link_gates has (migration 0004).
const linkGateStripes = 1024

// linkGateStripe is the row of link_gates that a claim with link locks:
// the hash of what the links it may repeat share, their institution and,
// unless duplicates count across users, their user.
func linkGateStripe(clientUserID string, link *linkd.PendingLink) int32 {
	h := fnv.New32a()
	if !link.AllUsers {
		h.Write([]byte(clientUserID))
		h.Write([]byte{0}) // ids hold no NUL here: checkInstitutionID
	}
	h.Write([]byte(link.InstitutionID))
	return int32(h.Sum32() % linkGateStripes)
}

// errRace makes inTx run a transaction again, as after a serialization
// failure: a row it found was gone when it came to lock it.
var errRace = errors.New("row vanished before it was locked")

func checkClaim(publicToken, owner string, ttl time.Duration) error {
	if err := checkID("public_token", publicToken); err != nil {
		return err
	}
	if err := checkID("owner", owner); err != nil {
		return err
	}
	if ttl <= 0 {
		return linkd.InvalidField("ttl", "ttl must be positive")
	}
	return nil
}

// RenewExchangeClaim extends owner's claim on publicToken to now+ttl. It
// returns ECONFLICT when owner no longer holds it: another owner took it
// over, it was released, or the token was spent on an Item.
func (db *DB) RenewExchangeClaim(ctx context.Context, publicToken, owner string, now time.Time, ttl time.Duration) error {
	if err := checkClaim(publicToken, owner, ttl); err != nil {
		return err
	}
	return db.inTx(ctx, "renew exchange claim", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE exchange_claims SET expires_ns = $3 WHERE public_token_sha256 = $1 AND owner = $2`,
			publicTokenSum(publicToken), owner, ns(now.Add(ttl)))
		if err == nil && tag.RowsAffected() == 0 {
			return linkd.Errorf(linkd.ECONFLICT, "exchange claim is no longer held by this owner")
		}
		return err
	})
}

// ReleaseExchangeClaim ends owner's claim on publicToken: with
// outcomeUnknown it stays as an expired mark without an owner, so the next
// claimant learns of it (Earlier); otherwise it is removed. A claim owner
// does not hold is left alone.
func (db *DB) ReleaseExchangeClaim(ctx context.Context, publicToken, owner string, outcomeUnknown bool) error {
	if err := checkID("public_token", publicToken); err != nil {
		return err
	}
	if err := checkID("owner", owner); err != nil {
		return err
	}
	sum := publicTokenSum(publicToken)
	return db.inTx(ctx, "release exchange claim", func(tx pgx.Tx) error {
		var err error
		if outcomeUnknown {
			_, err = tx.Exec(ctx, `
				UPDATE exchange_claims SET owner = '', expires_ns = $3, earlier = true, -- expired at any now
				    institution_id = NULL, link = NULL
				WHERE public_token_sha256 = $1 AND owner = $2`, sum, owner, int64(math.MinInt64))
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM exchange_claims WHERE public_token_sha256 = $1 AND owner = $2`, sum, owner)
		}
		return err
	})
}
