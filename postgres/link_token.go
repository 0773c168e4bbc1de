package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// PutLinkToken records a link token, filling in created_at when unset. It
// returns EINVALID naming link_token or client_user_id when one is missing
// and ECONFLICT when the token is recorded already.
func (db *DB) PutLinkToken(ctx context.Context, t *storagev1.StoredLinkToken) error {
	t, err := db.checkLinkToken(t)
	if err != nil {
		return err
	}
	return db.inTx(ctx, "put link token", func(tx pgx.Tx) error {
		return putLinkToken(ctx, tx, t)
	})
}

// checkLinkToken validates t and returns it with created_at filled in.
func (db *DB) checkLinkToken(t *storagev1.StoredLinkToken) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", t.GetLinkToken()); err != nil {
		return nil, err
	}
	if err := checkID("client_user_id", t.GetClientUserId()); err != nil {
		return nil, err
	}
	if t.GetCreatedAt() == nil {
		t = proto.CloneOf(t)
		t.CreatedAt = timestamppb.New(db.now())
	}
	return t, nil
}

func putLinkToken(ctx context.Context, q querier, t *storagev1.StoredLinkToken) error {
	rec, err := marshal("put link token", t)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `
		INSERT INTO link_tokens (link_token, client_user_id, expires_ns, hosted_check_ns, record) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (link_token) DO NOTHING`,
		t.GetLinkToken(), t.GetClientUserId(), nsOrNull(t.GetExpiration()), nsOrNull(t.GetHostedCheckAt()), rec)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return linkd.Errorf(linkd.ECONFLICT, "link token is already recorded")
	}
	return nil
}

// GetLinkToken returns a link token linkd issued, or ENOTFOUND; EINVALID
// naming link_token for a bad id.
func (db *DB) GetLinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", linkToken); err != nil {
		return nil, err
	}
	t, err := getLinkToken(ctx, db.pool, `SELECT record FROM link_tokens WHERE link_token = $1`, linkToken)
	return t, wrap("get link token", err)
}

// getLinkToken returns the one link token query selects, or ENOTFOUND.
func getLinkToken(ctx context.Context, q querier, query string, args ...any) (*storagev1.StoredLinkToken, error) {
	return getRecord(ctx, q, "link token", func() *storagev1.StoredLinkToken { return new(storagev1.StoredLinkToken) }, query, args...)
}

// unexpiredRenewal selects the fresh token that renewed $1 when it has not
// expired at $2 (a token without an expiration never does).
const unexpiredRenewal = `
	SELECT f.record FROM link_token_renewals r JOIN link_tokens f ON f.link_token = r.fresh_link_token
	WHERE r.dead_link_token = $1 AND (f.expires_ns IS NULL OR f.expires_ns > $2)`

// RenewLinkToken records fresh as the renewal of dead, and fresh as a link
// token, unless dead has an unexpired renewal at now already; it returns
// the renewal that stands. It returns EINVALID for a missing id, ENOTFOUND
// when dead is not recorded, and ECONFLICT when fresh is recorded already.
func (db *DB) RenewLinkToken(ctx context.Context, dead string, fresh *storagev1.StoredLinkToken, now time.Time) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", dead); err != nil {
		return nil, err
	}
	fresh, err := db.checkLinkToken(fresh)
	if err != nil {
		return nil, err
	}
	var out *storagev1.StoredLinkToken
	err = db.inTx(ctx, "renew link token", func(tx pgx.Tx) error {
		// The dead token's row serializes renewals of it.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM link_tokens WHERE link_token = $1 FOR UPDATE`, dead).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return linkd.Errorf(linkd.ENOTFOUND, "link token not found")
		} else if err != nil {
			return err
		}
		earlier, err := getLinkToken(ctx, tx, unexpiredRenewal, dead, ns(now))
		if err == nil {
			out = earlier
			return nil
		} else if linkd.ErrorCode(err) != linkd.ENOTFOUND {
			return err
		}
		if err := putLinkToken(ctx, tx, fresh); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO link_token_renewals (dead_link_token, fresh_link_token) VALUES ($1, $2)
			ON CONFLICT (dead_link_token) DO UPDATE SET fresh_link_token = excluded.fresh_link_token`,
			dead, fresh.GetLinkToken())
		out = fresh
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LinkTokenRenewal returns the unexpired renewal of a dead token at now,
// or ENOTFOUND; EINVALID naming link_token for a bad id.
func (db *DB) LinkTokenRenewal(ctx context.Context, dead string, now time.Time) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", dead); err != nil {
		return nil, err
	}
	t, err := getLinkToken(ctx, db.pool, unexpiredRenewal, dead, ns(now))
	if linkd.ErrorCode(err) == linkd.ENOTFOUND {
		return nil, linkd.Errorf(linkd.ENOTFOUND, "link token has no unexpired renewal")
	}
	return t, wrap("get link token renewal", err)
}

// nsOrNull is ts in Unix nanoseconds, or NULL when unset.
func nsOrNull(ts *timestamppb.Timestamp) *int64 {
	if ts == nil {
		return nil
	}
	v := ns(ts.AsTime())
	return &v
}

// HostedLinkTokensDue returns up to limit (MaxPageSize when zero or less)
// link tokens whose hosted check is due at now, the longest due first.
func (db *DB) HostedLinkTokensDue(ctx context.Context, now time.Time, limit int) ([]*storagev1.StoredLinkToken, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT record FROM link_tokens WHERE hosted_check_ns <= $1
		ORDER BY hosted_check_ns, link_token LIMIT $2`, ns(now), pageLimit(limit))
	if err != nil {
		return nil, wrap("hosted link tokens due", err)
	}
	var out []*storagev1.StoredLinkToken
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&rec); err != nil {
			return nil, wrap("hosted link tokens due", err)
		}
		t := new(storagev1.StoredLinkToken)
		if err := unmarshal("link token", rec, t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, wrap("hosted link tokens due", rows.Err())
}

// SetHostedLinkTokenCheck moves a link token's hosted check to at, or ends
// its checks when at is zero, in its record and its column; ENOTFOUND when
// the token is not recorded.
func (db *DB) SetHostedLinkTokenCheck(ctx context.Context, linkToken string, at time.Time) error {
	if err := checkID("link_token", linkToken); err != nil {
		return err
	}
	return db.inTx(ctx, "set hosted link token check", func(tx pgx.Tx) error {
		t, err := getLinkToken(ctx, tx, `SELECT record FROM link_tokens WHERE link_token = $1 FOR UPDATE`, linkToken)
		if err != nil {
			return err
		}
		t.HostedCheckAt = nil
		if !at.IsZero() {
			t.HostedCheckAt = timestamppb.New(at)
		}
		rec, err := marshal("set hosted link token check", t)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE link_tokens SET hosted_check_ns = $2, record = $3 WHERE link_token = $1`,
			linkToken, nsOrNull(t.GetHostedCheckAt()), rec)
		return err
	})
}

// SettleLinkToken records settled as the link token's final answer unless
// it has one already (the first stands); ENOTFOUND when the token is not
// recorded.
func (db *DB) SettleLinkToken(ctx context.Context, linkToken string, settled *storagev1.LinkTokenSettlement) error {
	if err := checkID("link_token", linkToken); err != nil {
		return err
	}
	return db.inTx(ctx, "settle link token", func(tx pgx.Tx) error {
		t, err := getLinkToken(ctx, tx, `SELECT record FROM link_tokens WHERE link_token = $1 FOR UPDATE`, linkToken)
		if err != nil || t.GetSettled() != nil {
			return err
		}
		t.Settled = proto.CloneOf(settled)
		rec, err := marshal("settle link token", t)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE link_tokens SET record = $2 WHERE link_token = $1`, linkToken, rec)
		return err
	})
}
