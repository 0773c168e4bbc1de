package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// UpdateLinkSession applies fn to the session linkSessionID (a new session
// carrying only its id when there is none) and stores it, with its
// session_starts entry, when fn reports a change. A session it creates is
// counted on its recorded link token in the same transaction, and refused
// with ERATELIMIT when the token created linkd.MaxSessionsPerLinkToken
// (linkd.CountLinkTokenSession). It returns the session as stored after
// the call and fn's error unchanged. It returns an EINVALID *linkd.Error
// naming link_session_id when the id is empty or too long.
func (db *DB) UpdateLinkSession(ctx context.Context, linkSessionID string, fn func(s *linkdv1.LinkSession) (bool, error)) (*linkdv1.LinkSession, error) {
	if err := checkID("link_session_id", linkSessionID); err != nil {
		return nil, err
	}
	var out *linkdv1.LinkSession
	err := db.update(ctx, "update link session", func(tx *bbolt.Tx) error {
		var err error
		out, err = updateLinkSession(tx, linkSessionID, fn, db.now(), true)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// updateLinkSession is UpdateLinkSession in tx, for PutItem too: a
// session it creates is counted on its link token, refused at the bound
// only with refuse (PutItem's never is; now serves only the refusal).
func updateLinkSession(tx *bbolt.Tx, id string, fn func(s *linkdv1.LinkSession) (bool, error), now time.Time, refuse bool) (*linkdv1.LinkSession, error) {
	key := []byte(id)
	s := new(linkdv1.LinkSession)
	found, err := get(tx, bucketSessions, key, s)
	if err != nil {
		return nil, err
	}
	if !found {
		s.LinkSessionId = id
	}
	var oldStart []byte
	if found {
		oldStart = sessionStartKey(s)
	}
	// fn works on a copy, so that a change it reports nothing about (or
	// abandons with an error) is never stored or returned.
	next := proto.CloneOf(s)
	changed, err := fn(next)
	if err != nil {
		return nil, fnErr(err)
	}
	if !changed {
		return s, nil
	}
	if next.GetLinkSessionId() != id {
		return nil, linkd.Errorf(linkd.EINTERNAL, "an update function changed a link session's id")
	}
	if !found {
		if err := countLinkTokenSession(tx, next.GetLinkToken(), now, refuse); err != nil {
			return nil, err
		}
	}
	if err := putSession(tx, next, oldStart); err != nil {
		return nil, err
	}
	return next, nil
}

// countLinkTokenSession counts a new session on its link token linkToken
// (linkd.CountLinkTokenSession). A session without a link token, or of a
// token not recorded (pruned), is not counted. It reads and rewrites only
// the record's sessions field (withSessions): decoding and encoding the
// whole record, the token's CreateLinkTokenRequest included, for one
// counter was ~1% of a connected link's CPU. A count at the limit, which
// may be refused with the token's expiration, takes the whole record.
func countLinkTokenSession(tx *bbolt.Tx, linkToken string, now time.Time, refuse bool) error {
	if linkToken == "" {
		return nil
	}
	key := []byte(linkToken)
	v := tx.Bucket(bucketLinkTokens).Get(key)
	if v == nil {
		return nil
	}
	n, err := storedSessions(v)
	if err != nil {
		return internal("decode link_tokens value", err)
	}
	t := &storagev1.StoredLinkToken{Sessions: n}
	if refuse && n >= linkd.MaxSessionsPerLinkToken {
		if _, err := get(tx, bucketLinkTokens, key, t); err != nil {
			return err
		}
	}
	if err := linkd.CountLinkTokenSession(t, now, refuse); err != nil {
		return err
	}
	return tx.Bucket(bucketLinkTokens).Put(key, withSessions(v, t.GetSessions()))
}

// linkTokenSessionsField is StoredLinkToken.sessions's field number.
var linkTokenSessionsField = (*storagev1.StoredLinkToken)(nil).ProtoReflect().Descriptor().Fields().ByName("sessions").Number()

// storedSessions returns the sessions field of an encoded StoredLinkToken
// (the last one, as proto.Unmarshal does), stepping over the rest. It
// returns an error for a value that is not a protobuf message.
func storedSessions(v []byte) (int32, error) {
	var n int32
	for rest := v; len(rest) > 0; {
		num, typ, tn := protowire.ConsumeTag(rest)
		if tn < 0 {
			return 0, protowire.ParseError(tn)
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[tn:])
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		if num == linkTokenSessionsField && typ == protowire.VarintType {
			x, _ := protowire.ConsumeVarint(rest[tn:])
			n = int32(x)
		}
		rest = rest[tn+m:]
	}
	return n, nil
}

// withSessions returns a copy of the encoded StoredLinkToken v (checked by
// storedSessions) with its sessions field set to n, where proto.Marshal
// puts it (before the fields numbered above it), so that the record is
// the one encoding the decoded record with the new count gives.
func withSessions(v []byte, n int32) []byte {
	out := make([]byte, 0, len(v)+protowire.SizeTag(linkTokenSessionsField)+protowire.SizeVarint(uint64(int64(n))))
	written := false
	for rest := v; len(rest) > 0; {
		num, typ, tn := protowire.ConsumeTag(rest)
		m := protowire.ConsumeFieldValue(num, typ, rest[tn:])
		if num > linkTokenSessionsField && !written {
			out, written = appendSessions(out, n), true
		}
		if num != linkTokenSessionsField {
			out = append(out, rest[:tn+m]...)
		}
		rest = rest[tn+m:]
	}
	if !written {
		out = appendSessions(out, n)
	}
	return out
}

// appendSessions appends the sessions field n, none for 0 as proto3 has.
func appendSessions(b []byte, n int32) []byte {
	if n == 0 {
		return b
	}
	b = protowire.AppendTag(b, linkTokenSessionsField, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(n)))
}

// putSession stores s and moves its session_starts entry from oldStart (nil
// for a new session).
func putSession(tx *bbolt.Tx, s *linkdv1.LinkSession, oldStart []byte) error {
	if err := put(tx, bucketSessions, []byte(s.GetLinkSessionId()), s); err != nil {
		return err
	}
	newStart := sessionStartKey(s)
	if oldStart != nil && !bytes.Equal(oldStart, newStart) {
		if err := tx.Bucket(bucketSessionStarts).Delete(oldStart); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketSessionStarts).Put(newStart, nil)
}

// sessionStartKey is the session_starts key of s.
func sessionStartKey(s *linkdv1.LinkSession) []byte {
	return timeKey(linkd.SessionStart(s), s.GetLinkSessionId())
}

// GetLinkSession returns a Link session. It returns an ENOTFOUND
// *linkd.Error when there is no such session.
func (db *DB) GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error) {
	if err := checkID("link_session_id", linkSessionID); err != nil {
		return nil, err
	}
	s := new(linkdv1.LinkSession)
	err := db.view(ctx, "get link session", func(tx *bbolt.Tx) error {
		found, err := get(tx, bucketSessions, []byte(linkSessionID), s)
		if err == nil && !found {
			err = linkd.Errorf(linkd.ENOTFOUND, "link session not found")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newSession() *linkdv1.LinkSession { return new(linkdv1.LinkSession) }

// MaxPageSize caps the limit of LinkSessions and ListWebhooks; a limit of
// zero or less means MaxPageSize too.
const MaxPageSize = 1000

// LinkSessions returns one page of the sessions that started
// (linkd.SessionStart) in [since, until), in start order, read from the
// session_starts index, and the next page's token ("" after the last). It
// returns an EINVALID *linkd.Error naming page_token for a token it did
// not issue for this window.
func (db *DB) LinkSessions(ctx context.Context, since, until time.Time, pageToken string, limit int) ([]*linkdv1.LinkSession, string, error) {
	from := appendTime(nil, since)
	end := appendTime(nil, until)
	if pageToken != "" {
		k, err := decodePageToken(pageToken)
		if err != nil || bytes.Compare(k, from) < 0 {
			return nil, "", linkd.InvalidField("page_token", "page_token is not one this store issued")
		}
		from = k
	}
	limit = pageLimit(limit)
	var out []*linkdv1.LinkSession
	var next string
	err := db.view(ctx, "list link sessions", func(tx *bbolt.Tx) error {
		out, next = nil, ""
		c := tx.Bucket(bucketSessionStarts).Cursor()
		for k, _ := c.Seek(from); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			if len(k) < 8 {
				return internal("list link sessions", errMalformedKey)
			}
			if len(out) == limit {
				next = encodePageToken(k)
				return nil
			}
			s := new(linkdv1.LinkSession)
			if found, err := get(tx, bucketSessions, k[8:], s); err != nil {
				return err
			} else if !found {
				return internal("list link sessions", errDanglingIndex)
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// pageLimit is limit capped to MaxPageSize.
func pageLimit(limit int) int {
	if limit <= 0 || limit > MaxPageSize {
		return MaxPageSize
	}
	return limit
}

// A page token is the index key the next page starts at, in URL-safe
// base64: opaque to callers, and valid across restarts.
func encodePageToken(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

func decodePageToken(tok string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(tok) }
