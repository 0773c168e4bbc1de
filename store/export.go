package store

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

var _ linkd.Exporter = (*DB)(nil)

// Export calls fn with every link token, session, Item (with its sealed
// access token and spent public token hashes) and webhook, from one read
// transaction, for linkd migrate. Claims, renewals, deliveries, leases and
// queued refreshes are not copied: they are short-lived, and a queued
// refresh only improves an Item. It returns fn's error, or EINTERNAL.
func (db *DB) Export(ctx context.Context, fn func(linkd.Record) error) error {
	return db.view(ctx, "export", func(tx *bbolt.Tx) error {
		err := each(tx, bucketLinkTokens, func() *storagev1.StoredLinkToken { return new(storagev1.StoredLinkToken) },
			func(_ []byte, t *storagev1.StoredLinkToken) error { return fn(linkd.Record{LinkToken: t}) })
		if err != nil {
			return err
		}
		err = each(tx, bucketSessions, func() *linkdv1.LinkSession { return new(linkdv1.LinkSession) },
			func(_ []byte, s *linkdv1.LinkSession) error { return fn(linkd.Record{Session: s}) })
		if err != nil {
			return err
		}
		err = each(tx, bucketItems, func() *linkdv1.Item { return new(linkdv1.Item) }, func(k []byte, item *linkdv1.Item) error {
			own, err := ownOf(tx.Bucket(bucketItems).Get(k))
			if err != nil {
				return err
			}
			return fn(linkd.Record{Item: &linkd.ItemRecord{Item: item, Sealed: own.GetSealedAccessToken(), PublicTokenHashes: own.GetPublicTokenSums()}})
		})
		if err != nil {
			return err
		}
		return each(tx, bucketWebhooks, func() *storagev1.StoredWebhook { return new(storagev1.StoredWebhook) },
			func(k []byte, w *storagev1.StoredWebhook) error {
				return fn(linkd.Record{Webhook: &linkd.WebhookRecord{Key: bytes.Clone(k), Webhook: w}})
			})
	})
}
