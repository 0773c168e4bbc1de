package postgres

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linkd/linkd"
)

// ClaimExchange claims the exchange of a public token for c.Owner until
// c.Now+c.TTL, unless the token was spent on an Item (then it returns the
// Item) or another owner's claim is live at c.Now (then it returns that
// owner and when the claim ends). Taking over a claim that ended without
// an outcome sets Earlier. Two processes claiming at once queue on the
// claim's row (INSERT ... ON CONFLICT DO NOTHING, then SELECT ... FOR
// UPDATE): exactly one gets Claimed. It returns EINVALID naming
// public_token, client_user_id, owner or ttl, and ECONFLICT when the claim
// or the use of the token belongs to another user.
func (db *DB) ClaimExchange(ctx context.Context, c linkd.ExchangeClaim) (linkd.ClaimResult, error) {
	if err := checkClaim(c.PublicToken, c.Owner, c.TTL); err != nil {
		return linkd.ClaimResult{}, err
	}
	if err := checkID("client_user_id", c.ClientUserID); err != nil {
		return linkd.ClaimResult{}, err
	}
	sum := publicTokenSum(c.PublicToken)
	now, until := ns(c.Now), ns(c.Now.Add(c.TTL))
	var res linkd.ClaimResult
	err := db.inTx(ctx, "claim exchange", func(tx pgx.Tx) error {
		res = linkd.ClaimResult{}
		// The claim's row first: a PutItem spending the token deletes it
		// in the transaction that records the use, so once this insert
		// has waited for such a PutItem, the use is visible to the next
		// statement (a new snapshot under READ COMMITTED; under
		// SERIALIZABLE the race is a serialization failure instead).
		tag, err := tx.Exec(ctx, `
			INSERT INTO exchange_claims (public_token_sha256, client_user_id, owner, expires_ns, earlier)
			VALUES ($1, $2, $3, $4, false) ON CONFLICT (public_token_sha256) DO NOTHING`,
			sum, c.ClientUserID, c.Owner, until)
		if err != nil {
			return err
		}
		inserted := tag.RowsAffected() == 1
		var itemID, user string
		err = tx.QueryRow(ctx, `SELECT item_id, client_user_id FROM public_token_uses WHERE public_token_sha256 = $1`, sum).Scan(&itemID, &user)
		if err == nil {
			if user != c.ClientUserID {
				return linkd.Errorf(linkd.ECONFLICT, "public_token was exchanged for another user")
			}
			if res.Item, err = getItem(ctx, tx, `SELECT record FROM items WHERE item_id = $1`, itemID); err != nil {
				return err
			}
			return errRollback // spent: no claim is taken
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if inserted {
			res.Claimed = true
			return nil
		}
		var owner string
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
		_, err = tx.Exec(ctx, `
			UPDATE exchange_claims SET owner = $2, expires_ns = $3, earlier = $4 WHERE public_token_sha256 = $1`,
			sum, c.Owner, until, earlier)
		res.Claimed, res.Earlier = true, earlier
		return err
	})
	if err != nil {
		return linkd.ClaimResult{}, err
	}
	return res, nil
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
				UPDATE exchange_claims SET owner = '', expires_ns = $3, earlier = true -- expired at any now
				WHERE public_token_sha256 = $1 AND owner = $2`, sum, owner, int64(math.MinInt64))
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM exchange_claims WHERE public_token_sha256 = $1 AND owner = $2`, sum, owner)
		}
		return err
	})
}
