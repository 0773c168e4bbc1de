package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// UpdateLinkSession applies fn to a session (a new one carrying only its
// id when there is none) and stores the result when fn reports a change,
// with the row locked meanwhile. A session it creates is counted on its
// recorded link token, whose row it locks, and refused with ERATELIMIT
// when the token created linkd.MaxSessionsPerLinkToken
// (linkd.CountLinkTokenSession). It returns the session as stored after
// the call and fn's error unchanged; EINVALID naming link_session_id for a
// bad id.
func (db *DB) UpdateLinkSession(ctx context.Context, linkSessionID string, fn func(s *linkdv1.LinkSession) (bool, error)) (*linkdv1.LinkSession, error) {
	if err := checkID("link_session_id", linkSessionID); err != nil {
		return nil, err
	}
	var out *linkdv1.LinkSession
	var fnErr error
	err := db.inTx(ctx, "update link session", func(tx pgx.Tx) error {
		var err error
		out, fnErr, err = updateLinkSession(ctx, tx, linkSessionID, nil, fn, db.now(), true)
		if err != nil {
			return err
		}
		if fnErr != nil {
			return errRollback // fn's error is the answer; nothing changes
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, fnErr
}

// updateLinkSession applies before (when not nil) and then fn to the
// session, in tx, and writes it when either reports a change. It returns
// the session as it stands after the transaction and fn's error; an error
// of either discards both changes.
//
// A session that does not exist yet is inserted first (ON CONFLICT DO
// NOTHING) and then locked, so that two processes creating one session
// queue on its row instead of both inserting and one losing its event.
// When nothing changes, the inserted row is deleted again. A session it
// creates is counted on its link token, refused at the bound only with
// refuse (PutItem's never is; now serves only the refusal).
func updateLinkSession(ctx context.Context, tx pgx.Tx, id string, before, fn func(*linkdv1.LinkSession) (bool, error), now time.Time, refuse bool) (*linkdv1.LinkSession, error, error) {
	empty, err := marshal("new link session", &linkdv1.LinkSession{LinkSessionId: id})
	if err != nil {
		return nil, nil, err
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO link_sessions (link_session_id, started_ns, record) VALUES ($1, 0, $2)
		ON CONFLICT (link_session_id) DO NOTHING`, id, empty)
	if err != nil {
		return nil, nil, err
	}
	inserted := tag.RowsAffected() == 1
	var rec []byte
	if err := tx.QueryRow(ctx, `SELECT record FROM link_sessions WHERE link_session_id = $1 FOR UPDATE`, id).Scan(&rec); err != nil {
		return nil, nil, err
	}
	stored := new(linkdv1.LinkSession)
	if err := unmarshal("link session", rec, stored); err != nil {
		return nil, nil, err
	}
	s := proto.CloneOf(stored)
	changed := false
	for _, f := range []func(*linkdv1.LinkSession) (bool, error){before, fn} {
		if f == nil {
			continue
		}
		c, err := f(s)
		if err != nil {
			return stored, err, nil
		}
		changed = changed || c
	}
	if !changed {
		if inserted { // never stored: the session stays missing
			_, err = tx.Exec(ctx, `DELETE FROM link_sessions WHERE link_session_id = $1`, id)
		}
		return stored, nil, err
	}
	if inserted {
		if err := countLinkTokenSession(ctx, tx, s.GetLinkToken(), now, refuse); err != nil {
			return nil, nil, err
		}
	}
	if rec, err = marshal("link session", s); err != nil {
		return nil, nil, err
	}
	_, err = tx.Exec(ctx, `UPDATE link_sessions SET started_ns = $2, record = $3 WHERE link_session_id = $1`,
		id, ns(linkd.SessionStart(s)), rec)
	return s, nil, err
}

// countLinkTokenSession counts a new session on its link token linkToken
// (linkd.CountLinkTokenSession), with the token's row locked so that
// sessions created at once through several handles are counted one after
// another. A session without a link token, or of a token not recorded
// (pruned), is not counted.
func countLinkTokenSession(ctx context.Context, tx pgx.Tx, linkToken string, now time.Time, refuse bool) error {
	if linkToken == "" {
		return nil
	}
	t, err := getLinkToken(ctx, tx, `SELECT record FROM link_tokens WHERE link_token = $1 FOR UPDATE`, linkToken)
	if linkd.ErrorCode(err) == linkd.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if err := linkd.CountLinkTokenSession(t, now, refuse); err != nil {
		return err
	}
	rec, err := marshal("count link token session", t)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE link_tokens SET record = $2 WHERE link_token = $1`, linkToken, rec)
	return err
}

// GetLinkSession returns a Link session, or ENOTFOUND; EINVALID naming
// link_session_id for a bad id. A session created
// by a concurrent UpdateLinkSession that has not committed is not found.
func (db *DB) GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error) {
	if err := checkID("link_session_id", linkSessionID); err != nil {
		return nil, err
	}
	var rec []byte
	err := db.pool.QueryRow(ctx, `SELECT record FROM link_sessions WHERE link_session_id = $1`, linkSessionID).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, linkd.Errorf(linkd.ENOTFOUND, "link session not found")
	} else if err != nil {
		return nil, wrap("get link session", err)
	}
	s := new(linkdv1.LinkSession)
	if err := unmarshal("link session", rec, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Paging: a page token is the last sort key of the page before, base64url
// encoded: 8 bytes of big-endian Unix nanoseconds, then the id. Callers
// treat it as opaque.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func pageLimit(limit int) int {
	if limit <= 0 {
		return defaultPageSize
	}
	return min(limit, maxPageSize)
}

func encodePageToken(at int64, id string) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(at))
	return base64.RawURLEncoding.EncodeToString(append(b, id...))
}

// decodePageToken returns the key a page token names; ok is false for "".
// It returns EINVALID naming page_token for a token it did not make.
func decodePageToken(token string) (at int64, id string, ok bool, err error) {
	if token == "" {
		return 0, "", false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 8 || len(b) > 8+maxIDLen {
		return 0, "", false, linkd.InvalidField("page_token", "page_token is not one this store returned")
	}
	return int64(binary.BigEndian.Uint64(b)), string(b[8:]), true, nil
}

// LinkSessions returns one page of the sessions that started in [since,
// until), in start order (then by id), and the next page's token. It
// returns EINVALID naming page_token for a token it did not make.
func (db *DB) LinkSessions(ctx context.Context, since, until time.Time, pageToken string, limit int) ([]*linkdv1.LinkSession, string, error) {
	at, id, ok, err := decodePageToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	if !ok { // before every key
		at, id = ns(since), ""
	}
	limit = pageLimit(limit)
	rows, err := db.pool.Query(ctx, `
		SELECT started_ns, link_session_id, record FROM link_sessions
		WHERE started_ns >= $1 AND started_ns < $2 AND (started_ns, link_session_id) > ($3, $4)
		ORDER BY started_ns, link_session_id LIMIT $5`,
		ns(since), ns(until), at, id, limit+1)
	if err != nil {
		return nil, "", wrap("list link sessions", err)
	}
	return scanPage(rows, limit, "list link sessions", func() *linkdv1.LinkSession { return new(linkdv1.LinkSession) })
}

// scanPage reads rows of (sort time, id, record), at most limit records,
// and returns them with the next page's token when a row beyond limit
// exists ("" after the last page). It closes rows.
func scanPage[M proto.Message](rows pgx.Rows, limit int, op string, newMsg func() M) ([]M, string, error) {
	defer rows.Close()
	var out []M
	var lastAt int64
	var lastID string
	for rows.Next() {
		if len(out) == limit {
			// One more than the page: there is a next page.
			return out, encodePageToken(lastAt, lastID), nil
		}
		var rec []byte
		if err := rows.Scan(&lastAt, &lastID, &rec); err != nil {
			return nil, "", wrap(op, err)
		}
		m := newMsg()
		if err := unmarshal(op, rec, m); err != nil {
			return nil, "", err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap(op, err)
	}
	return out, "", nil
}
