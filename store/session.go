package store

import (
	"bytes"
	"context"
	"slices"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// RecordRedirect files a redirect under its link_session_id, creating the
// session bound to linkToken and clientUserID on first sight, whichever kind
// of redirect comes first. An event goes in timestamp order, after events
// with an equal timestamp; an event without a timestamp goes last, and
// events never move past it, since its place in time is unknown. An event
// equal to a recorded one is dropped as a retry. Connected and exit set the
// outcome once (connected without its public token); the same outcome again
// is a no-op. first_seen_at and last_seen_at take the store's clock
// whenever the session changes. Unrecognized parameters are not kept: LinkSession has no
// place for them.
//
// It returns an EINVALID *linkd.Error naming link_session_id when the
// redirect has none (or no result at all), naming link_token or
// client_user_id when one is missing, and ECONFLICT when the session is
// bound to another link token or user or already has another outcome.
func (db *DB) RecordRedirect(ctx context.Context, linkToken, clientUserID string, r *linkdv1.WebviewRedirect) error {
	sessionID := linkd.RedirectSessionID(r)
	if err := checkID("link_session_id", sessionID); err != nil {
		return err
	}
	if err := checkID("link_token", linkToken); err != nil {
		return err
	}
	if err := checkID("client_user_id", clientUserID); err != nil {
		return err
	}
	now := timestamppb.New(db.now())
	return db.update(ctx, "record redirect", func(tx *bbolt.Tx) error {
		return recordRedirect(tx, sessionID, linkToken, clientUserID, r, now)
	})
}

// MaxSessionEvents bounds the events kept for one Link session. A real
// session fires a few dozen; the bound keeps a caller from growing one
// record (rewritten whole on each event) without end.
const MaxSessionEvents = 500

func recordRedirect(tx *bbolt.Tx, sessionID, linkToken, clientUserID string, r *linkdv1.WebviewRedirect, now *timestamppb.Timestamp) error {
	key := []byte(sessionID)
	s := new(linkdv1.LinkSession)
	found, err := get(tx, bucketSessions, key, s)
	if err != nil {
		return err
	}
	changed := !found
	if !found {
		s.LinkSessionId, s.LinkToken, s.ClientUserId = sessionID, linkToken, clientUserID
	} else if s.GetLinkToken() != linkToken || s.GetClientUserId() != clientUserID {
		return linkd.Errorf(linkd.ECONFLICT, "link session belongs to another link token")
	}
	switch res := r.GetResult().(type) {
	case *linkdv1.WebviewRedirect_Event:
		if hasEvent(s, res.Event) {
			break // a resubmission: recorded already
		}
		if len(s.GetEvents()) >= MaxSessionEvents {
			// FAILED_PRECONDITION, not a rate limit: retrying cannot help.
			return linkd.Errorf(linkd.EPRECONDITION, "link session has %d events, the most linkd records", MaxSessionEvents)
		}
		if addEvent(s, res.Event) {
			changed = true
		}
	case *linkdv1.WebviewRedirect_Connected:
		c := proto.CloneOf(res.Connected)
		c.PublicToken = ""
		set, err := setConnected(s, c)
		if err != nil {
			return err
		}
		changed = changed || set
	case *linkdv1.WebviewRedirect_Exit:
		set, err := setExit(s, res.Exit)
		if err != nil {
			return err
		}
		changed = changed || set
	}
	if !changed {
		return nil
	}
	if s.FirstSeenAt == nil {
		s.FirstSeenAt = now
	}
	s.LastSeenAt = now
	return put(tx, bucketSessions, key, s)
}

// addEvent inserts e in s.Events and reports whether it did: not when an
// equal event is there already. The place is after the last event that has
// no timestamp or a timestamp not after e's, so equal timestamps keep
// arrival order and an event without one stays where it arrived.
func addEvent(s *linkdv1.LinkSession, e *linkdv1.LinkEvent) bool {
	if hasEvent(s, e) {
		return false
	}
	i := len(s.Events)
	if ts := e.GetTimestamp(); ts != nil {
		at := ts.AsTime()
		for i > 0 {
			prev := s.Events[i-1].GetTimestamp()
			if prev == nil || !prev.AsTime().After(at) {
				break
			}
			i--
		}
	}
	s.Events = append(s.Events, nil)
	copy(s.Events[i+1:], s.Events[i:])
	s.Events[i] = e
	return true
}

// hasEvent reports whether an event equal to e is recorded.
func hasEvent(s *linkdv1.LinkSession, e *linkdv1.LinkEvent) bool {
	for _, old := range s.Events {
		if proto.Equal(old, e) {
			return true
		}
	}
	return false
}

// setConnected makes c the session's outcome and reports whether it did:
// not when the session has this outcome already. Another outcome is
// ECONFLICT.
func setConnected(s *linkdv1.LinkSession, c *linkdv1.ConnectedResult) (bool, error) {
	if s.GetOutcome() == nil {
		s.Outcome = &linkdv1.LinkSession_Connected{Connected: c}
		return true, nil
	} else if old := s.GetConnected(); old != nil && proto.Equal(old, c) {
		return false, nil
	}
	return false, errOtherOutcome()
}

// setExit is setConnected for an exit.
func setExit(s *linkdv1.LinkSession, e *linkdv1.ExitResult) (bool, error) {
	if s.GetOutcome() == nil {
		s.Outcome = &linkdv1.LinkSession_Exit{Exit: e}
		return true, nil
	} else if old := s.GetExit(); old != nil && proto.Equal(old, e) {
		return false, nil
	}
	return false, errOtherOutcome()
}

func errOtherOutcome() error {
	return linkd.Errorf(linkd.ECONFLICT, "link session already ended with another result")
}

// GetLinkSession returns a Link session. It returns an ENOTFOUND
// *linkd.Error when there is no such session.
func (db *DB) GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error) {
	s := new(linkdv1.LinkSession)
	err := db.view(ctx, "get link session", func(tx *bbolt.Tx) error {
		return getLinkSession(tx, linkSessionID, s)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func getLinkSession(tx *bbolt.Tx, linkSessionID string, s *linkdv1.LinkSession) error {
	found, err := get(tx, bucketSessions, []byte(linkSessionID), s)
	if err != nil {
		return err
	} else if !found {
		return linkd.Errorf(linkd.ENOTFOUND, "link session not found")
	}
	return nil
}

func newSession() *linkdv1.LinkSession { return new(linkdv1.LinkSession) }

// SessionStart is when a Link session started, for reports: its earliest
// event timestamp (events are kept in order, and ones without a timestamp
// go last), or else when linkd first saw it.
func SessionStart(s *linkdv1.LinkSession) time.Time {
	if evs := s.GetEvents(); len(evs) > 0 && evs[0].GetTimestamp() != nil {
		return evs[0].GetTimestamp().AsTime()
	}
	return s.GetFirstSeenAt().AsTime()
}

// LinkSessions returns the sessions that started (see SessionStart) in
// [since, until), in no particular order. It scans the sessions bucket,
// which retention keeps bounded. It returns an EINTERNAL *linkd.Error when
// the store fails.
func (db *DB) LinkSessions(ctx context.Context, since, until time.Time) ([]*linkdv1.LinkSession, error) {
	var out []*linkdv1.LinkSession
	err := db.view(ctx, "list link sessions", func(tx *bbolt.Tx) error {
		return each(tx, bucketSessions, newSession, func(_ []byte, s *linkdv1.LinkSession) error {
			if at := SessionStart(s); !at.Before(since) && at.Before(until) {
				out = append(out, s)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Prune deletes the Link sessions last seen before cutoff (by last_seen_at;
// a session recorded before linkd kept it counts by its latest event
// timestamp, and one with neither is kept) and the webhooks received
// before cutoff, and returns how many of each it deleted. Items and link
// tokens are not touched. It returns an EINTERNAL *linkd.Error when the
// store fails.
func (db *DB) Prune(ctx context.Context, cutoff time.Time) (sessions, webhooks int, err error) {
	// Find the old records in a read transaction, then delete them a few
	// hundred per write, so that writers (an exchanged Item waiting to be
	// stored) never queue behind a scan of the whole bucket.
	var oldSessions, oldHooks [][]byte
	err = db.view(ctx, "find old records", func(tx *bbolt.Tx) error {
		oldSessions, oldHooks = nil, nil
		err := each(tx, bucketSessions, newSession, func(k []byte, s *linkdv1.LinkSession) error {
			if sessionOlderThan(s, cutoff) {
				oldSessions = append(oldSessions, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Webhook keys start with be64(received_at): the old ones come first.
		end := appendTime(nil, cutoff)
		c := tx.Bucket(bucketWebhooks).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:min(len(k), 8)], end) < 0; k, _ = c.Next() {
			oldHooks = append(oldHooks, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for chunk := range slices.Chunk(oldSessions, pruneBatch) {
		n := 0
		err := db.update(ctx, "prune sessions", func(tx *bbolt.Tx) error {
			n = 0 // a batch may run this twice
			for _, k := range chunk {
				// Seen again since the scan? Then it stays.
				var s linkdv1.LinkSession
				if found, err := get(tx, bucketSessions, k, &s); err != nil {
					return err
				} else if !found || !sessionOlderThan(&s, cutoff) {
					continue
				}
				if err := tx.Bucket(bucketSessions).Delete(k); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return sessions, webhooks, err
		}
		sessions += n
	}
	for chunk := range slices.Chunk(oldHooks, pruneBatch) {
		err := db.update(ctx, "prune webhooks", func(tx *bbolt.Tx) error {
			for _, k := range chunk {
				if err := tx.Bucket(bucketWebhooks).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return sessions, webhooks, err
		}
		webhooks += len(chunk)
	}
	return sessions, webhooks, nil
}

// pruneBatch is how many records one Prune write transaction deletes.
const pruneBatch = 500

// sessionOlderThan reports whether a session was last seen before cutoff:
// by last_seen_at, or for a session recorded before linkd kept it, by its
// latest event; a session with neither is never old.
func sessionOlderThan(s *linkdv1.LinkSession, cutoff time.Time) bool {
	last := s.GetLastSeenAt()
	if last == nil && len(s.GetEvents()) > 0 {
		last = s.GetEvents()[len(s.GetEvents())-1].GetTimestamp()
	}
	return last != nil && last.AsTime().Before(cutoff)
}
