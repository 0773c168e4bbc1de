package store

import (
	"context"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// DeleteUserRecords erases a user whose Items are gone at Plaid, in one
// transaction: its Items (as DeleteItem), the webhooks naming them, its
// Link sessions and any naming its Items, its link tokens and their
// renewals, and its exchange claims. Only the Items have a per-user index:
// sessions, link tokens, webhooks and claims are found by a scan of their
// buckets, which holds the write lock meanwhile (erasure is rare; the
// counts say what it cost). It returns what it deleted, an EINVALID
// *linkd.Error naming client_user_id, and EPRECONDITION (deleting nothing)
// when the user has an Item not in removedItemIDs.
func (db *DB) DeleteUserRecords(ctx context.Context, clientUserID string, removedItemIDs []string) (linkd.RecordCounts, error) {
	if err := checkID("client_user_id", clientUserID); err != nil {
		return linkd.RecordCounts{}, err
	}
	removed := map[string]bool{}
	for _, id := range removedItemIDs {
		removed[id] = true
	}
	var counts linkd.RecordCounts
	err := db.update(ctx, "delete user records", func(tx *bbolt.Tx) error {
		counts = linkd.RecordCounts{} // a batch may run this again
		prefix := strPrefix(clientUserID)
		items := map[string]bool{}
		for _, k := range keysWithPrefix(tx.Bucket(bucketUserItems).Cursor(), prefix) {
			if len(k) < len(prefix)+8 {
				return internal("delete user records", errMalformedKey)
			}
			id := string(k[len(prefix)+8:])
			if !removed[id] {
				return linkd.Errorf(linkd.EPRECONDITION, "the user has an Item not removed at Plaid (linked meanwhile): remove it first")
			}
			items[id] = true
		}
		for id := range items {
			if err := deleteItem(tx, id); err != nil {
				return err
			}
			counts.Items++
		}
		var err error
		if counts.Webhooks, err = deleteWhere(tx, bucketWebhooks, func() *storagev1.StoredWebhook { return new(storagev1.StoredWebhook) },
			func(_ []byte, w *storagev1.StoredWebhook) bool { return items[w.GetItemId()] }); err != nil {
			return err
		}
		starts := tx.Bucket(bucketSessionStarts)
		if counts.Sessions, err = deleteWhere(tx, bucketSessions, func() *linkdv1.LinkSession { return new(linkdv1.LinkSession) },
			func(_ []byte, s *linkdv1.LinkSession) bool {
				if s.GetClientUserId() != clientUserID && !items[s.GetItemId()] {
					return false
				}
				starts.Delete(sessionStartKey(s))
				return true
			}); err != nil {
			return err
		}
		renewals := tx.Bucket(bucketLinkTokenRenewals)
		if counts.LinkTokens, err = deleteWhere(tx, bucketLinkTokens, func() *storagev1.StoredLinkToken { return new(storagev1.StoredLinkToken) },
			func(k []byte, t *storagev1.StoredLinkToken) bool {
				if t.GetClientUserId() != clientUserID {
					return false
				}
				renewals.Delete(k)
				return true
			}); err != nil {
			return err
		}
		pending := tx.Bucket(bucketPendingLinks)
		_, err = deleteWhere(tx, bucketExchangeClaims, func() *storagev1.ExchangeClaim { return new(storagev1.ExchangeClaim) },
			func(k []byte, c *storagev1.ExchangeClaim) bool {
				if c.GetClientUserId() != clientUserID {
					return false
				}
				if l := c.GetLink(); l != nil {
					pending.Delete(pendingLinkKey(l.GetInstitutionId(), clientUserID, k))
				}
				return true
			})
		return err
	})
	if err != nil {
		return linkd.RecordCounts{}, err
	}
	return counts, nil
}

// deleteWhere deletes the records of bucket that match, decoding each into
// a new M, and returns how many it deleted. match may delete records of
// other buckets that go with one (it must not touch bucket).
func deleteWhere[M proto.Message](tx *bbolt.Tx, bucket []byte, newMsg func() M, match func(k []byte, m M) bool) (int, error) {
	var doomed [][]byte
	err := each(tx, bucket, newMsg, func(k []byte, m M) error {
		if match(k, m) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	b := tx.Bucket(bucket)
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}
