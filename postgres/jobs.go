package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	"github.com/linkd/linkd/internal/records"
)

// DueItemRefreshes returns up to limit item_ids whose queued refresh is due
// at now, the longest due first.
func (db *DB) DueItemRefreshes(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT item_id FROM item_refreshes WHERE due_ns <= $1 ORDER BY due_ns, item_id LIMIT $2`,
		ns(now), pageLimit(limit))
	if err != nil {
		return nil, wrap("due item refreshes", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, wrap("due item refreshes", err)
}

// DeferItemRefresh moves an Item's queued refresh to at; no queued refresh
// is not an error. EINVALID naming item_id for a bad id.
func (db *DB) DeferItemRefresh(ctx context.Context, itemID string, at time.Time) error {
	if err := checkID("item_id", itemID); err != nil {
		return err
	}
	return db.inTx(ctx, "defer item refresh", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE item_refreshes SET due_ns = $2 WHERE item_id = $1`, itemID, ns(at))
		return err
	})
}

// pruneBatch is how many rows one Prune transaction deletes (or, for
// sessions, looks at), so that no transaction holds many locks for long.
const pruneBatch = 500

// Prune deletes, pruneBatch rows per transaction, the sessions last seen
// (linkd.SessionLastSeen) before c.Sessions, webhooks received before
// c.Webhooks, delivery ids recorded before c.Deliveries and link tokens
// that expired before c.LinkTokens (with their renewals); a zero cutoff
// deletes nothing of its kind. It returns what it deleted, also when it
// fails part way.
func (db *DB) Prune(ctx context.Context, c linkd.PruneCutoffs) (linkd.PruneResult, error) {
	var res linkd.PruneResult
	if !c.Sessions.IsZero() {
		var err error
		if res.Sessions, err = db.pruneSessions(ctx, c.Sessions); err != nil {
			return res, err
		}
	}
	kinds := []struct {
		cutoff time.Time
		n      *int
		sql    string
	}{
		// received_ns is the store's clock (RecordWebhook), never Plaid's.
		{c.Webhooks, &res.Webhooks, `DELETE FROM webhooks WHERE (received_ns, delivery_id) IN (
			SELECT received_ns, delivery_id FROM webhooks WHERE received_ns < $1 LIMIT $2)`},
		{c.Deliveries, &res.Deliveries, `DELETE FROM webhook_deliveries WHERE delivery_id IN (
			SELECT delivery_id FROM webhook_deliveries WHERE recorded_ns < $1 LIMIT $2)`},
		{c.LinkTokens, &res.LinkTokens, `DELETE FROM link_tokens WHERE link_token IN (
			SELECT link_token FROM link_tokens WHERE expires_ns < $1 LIMIT $2)`},
	}
	for _, k := range kinds {
		if k.cutoff.IsZero() {
			continue
		}
		for {
			var n int64
			err := db.inTx(ctx, "prune", func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, k.sql, ns(k.cutoff), pruneBatch)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return res, err
			}
			*k.n += int(n)
			if n < pruneBatch {
				break
			}
		}
	}
	return res, nil
}

// pruneSessions deletes the sessions last seen (linkd.SessionLastSeen, in
// the record) before cutoff. started_ns is the device-clock start, so it
// looks at the sessions that started before cutoff, keeping the ones seen
// since (a device clock behind), and at those that start after the
// store's clock (a device clock ahead), which no cutoff would reach; both
// ranges hold few sessions that are kept, bounded by the bad clocks.
func (db *DB) pruneSessions(ctx context.Context, cutoff time.Time) (int, error) {
	end := ns(cutoff)
	n, err := db.pruneSessionRange(ctx, cutoff, math.MinInt64, &end)
	if err != nil {
		return n, err
	}
	more, err := db.pruneSessionRange(ctx, cutoff, max(ns(db.now()), end), nil)
	return n + more, err
}

// pruneSessionRange deletes the sessions last seen before cutoff among
// those with started_ns in [from, end) (end nil: unbounded), in start
// order, looking at pruneBatch rows per transaction and resuming after the
// last one it looked at. The rows it looks at are locked, so that a
// session is never deleted on a record an update has just changed.
func (db *DB) pruneSessionRange(ctx context.Context, cutoff time.Time, from int64, end *int64) (int, error) {
	const scan = `SELECT link_session_id, started_ns, record FROM link_sessions
		WHERE (started_ns, link_session_id) > ($1, $2) %s
		ORDER BY started_ns, link_session_id LIMIT $3 FOR UPDATE`
	q := fmt.Sprintf(scan, "")
	if end != nil {
		q = fmt.Sprintf(scan, "AND started_ns < $4")
	}
	// Ids are never empty, so (from, '') starts at from itself.
	afterNs, afterID := from, ""
	total := 0
	for {
		n, seen := 0, 0
		lastNs, lastID := afterNs, afterID
		err := db.inTx(ctx, "prune sessions", func(tx pgx.Tx) error {
			n, seen = 0, 0 // a transaction may run this twice
			lastNs, lastID = afterNs, afterID
			args := []any{afterNs, afterID, pruneBatch}
			if end != nil {
				args = append(args, *end)
			}
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			var doomed []string
			var id string
			var started int64
			var rec []byte
			_, err = pgx.ForEachRow(rows, []any{&id, &started, &rec}, func() error {
				seen++
				lastNs, lastID = started, id
				seen, err := records.SessionLastSeen(rec)
				if err != nil {
					return internal("prune sessions: decode", err)
				}
				if seen.Before(cutoff) {
					doomed = append(doomed, id)
				}
				return nil
			})
			if err != nil || len(doomed) == 0 {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM link_sessions WHERE link_session_id = ANY($1)`, doomed)
			n = int(tag.RowsAffected())
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if seen < pruneBatch {
			return total, nil
		}
		afterNs, afterID = lastNs, lastID
	}
}

// ResealAccessTokens re-seals the access tokens not sealed with the
// Sealer's current key of up to batch Items after the item_id after, in
// item_id order, in one transaction, and returns how many and the
// item_id the next batch starts after: "" once the pass reached the last
// Item. Each batch reads on from after along the primary key instead of
// from the first row, so a pass reads the table once, not once per
// batch. The rows are taken FOR UPDATE SKIP LOCKED, so that several
// processes re-sealing at once share the work instead of queueing: a row
// another process holds is its to re-seal. It returns the Sealer's
// EINTERNAL when a token does not open, re-sealing none of its batch.
func (db *DB) ResealAccessTokens(ctx context.Context, after string, batch int) (int, string, error) {
	if batch <= 0 {
		batch = defaultPageSize
	}
	current := db.sealer.CurrentKeyID()
	n, next := 0, ""
	err := db.inTx(ctx, "reseal access tokens", func(tx pgx.Tx) error {
		n, next = 0, ""
		rows, err := tx.Query(ctx, `
			SELECT item_id, record FROM access_tokens WHERE item_id > $3 AND key_id <> $1
			ORDER BY item_id LIMIT $2 FOR UPDATE SKIP LOCKED`, current, batch, after)
		if err != nil {
			return err
		}
		type row struct {
			itemID string
			rec    []byte
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.itemID, &x.rec)
		})
		if err != nil {
			return err
		}
		if len(found) == batch {
			next = found[len(found)-1].itemID
		}
		for _, r := range found {
			sealed := new(storagev1.SealedAccessToken)
			if err := unmarshal("access token", r.rec, sealed); err != nil {
				return err
			}
			token, err := db.sealer.UnsealAccessToken(r.itemID, sealed)
			if err != nil {
				return err
			}
			resealed, err := db.sealer.SealAccessToken(r.itemID, token)
			if err != nil {
				return err
			}
			rec, err := marshal("reseal access token", resealed)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE access_tokens SET key_id = $2, record = $3 WHERE item_id = $1`,
				r.itemID, resealed.GetKeyId(), rec); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return n, next, nil
}

// SealedKeyIDs returns the id of every key that sealed a stored access
// token, each with the smallest item_id it sealed.
func (db *DB) SealedKeyIDs(ctx context.Context) (map[string]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT key_id, min(item_id) FROM access_tokens GROUP BY key_id`)
	if err != nil {
		return nil, wrap("sealed key ids", err)
	}
	out := make(map[string]string)
	var keyID, itemID string
	_, err = pgx.ForEachRow(rows, []any{&keyID, &itemID}, func() error {
		out[keyID] = itemID
		return nil
	})
	if err != nil {
		return nil, wrap("sealed key ids", err)
	}
	return out, nil
}

// TryLease takes or renews the named lease for owner until now+ttl and
// reports whether owner holds it: false while another owner's lease is
// live at now. One INSERT ... ON CONFLICT DO UPDATE ... WHERE settles
// concurrent takers. A ttl of 0 releases owner's lease. EINVALID naming
// name, owner or ttl (negative).
func (db *DB) TryLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if err := checkID("name", name); err != nil {
		return false, err
	}
	if err := checkID("owner", owner); err != nil {
		return false, err
	}
	if ttl < 0 {
		// 0 is how a stopping process releases its lease (service's
		// releaseLeases); it was refused here, so every shutdown on
		// Postgres logged a warning and left its job leases to expire.
		return false, linkd.InvalidField("ttl", "ttl must not be negative")
	}
	held := false
	err := db.inTx(ctx, "try lease", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO linkd_leases (name, owner, expires_ns) VALUES ($1, $2, $4)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_ns = excluded.expires_ns
			WHERE linkd_leases.owner = excluded.owner OR linkd_leases.expires_ns <= $3`,
			name, owner, ns(now), ns(now.Add(ttl)))
		held = tag.RowsAffected() == 1
		return err
	})
	return held, err
}

// SetLeaseCursor records cursor with the named lease and reports whether
// owner holds it: false, recording nothing, when the lease is another
// owner's or there is none. EINVALID naming name or owner.
func (db *DB) SetLeaseCursor(ctx context.Context, name, owner, cursor string) (bool, error) {
	if err := checkID("name", name); err != nil {
		return false, err
	}
	if err := checkID("owner", owner); err != nil {
		return false, err
	}
	held := false
	err := db.inTx(ctx, "set lease cursor", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE linkd_leases SET cursor = $3 WHERE name = $1 AND owner = $2`, name, owner, cursor)
		held = tag.RowsAffected() == 1
		return err
	})
	return held, err
}

// LeaseCursor returns the cursor last recorded with the named lease; ""
// when none was. EINVALID naming name.
func (db *DB) LeaseCursor(ctx context.Context, name string) (string, error) {
	if err := checkID("name", name); err != nil {
		return "", err
	}
	var cursor string
	err := db.pool.QueryRow(ctx, `SELECT cursor FROM linkd_leases WHERE name = $1`, name).Scan(&cursor)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", wrap("lease cursor", err)
	}
	return cursor, nil
}
