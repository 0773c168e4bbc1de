package store

import (
	"context"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// BeginExchange marks an exchange of publicToken as sent but unfinished, in
// one transaction. It reports whether an earlier exchange was already
// marked. It returns EINVALID naming public_token or client_user_id when
// one is missing, and ECONFLICT when the mark is another user's.
func (db *DB) BeginExchange(ctx context.Context, publicToken, clientUserID string) (earlier bool, err error) {
	if err := checkID("public_token", publicToken); err != nil {
		return false, err
	}
	if err := checkID("client_user_id", clientUserID); err != nil {
		return false, err
	}
	now := timestamppb.New(db.now())
	err = db.update(ctx, "begin exchange", func(tx *bbolt.Tx) error {
		earlier = false // a batch may run this twice
		key := publicTokenKey(publicToken)
		p := &storagev1.PendingExchange{}
		found, err := get(tx, bucketPendingExchanges, key, p)
		if err != nil {
			return err
		}
		if found {
			if p.GetClientUserId() != clientUserID {
				return linkd.Errorf(linkd.ECONFLICT, "public_token is being exchanged for another user")
			}
			earlier = true
		} else {
			p = &storagev1.PendingExchange{ClientUserId: clientUserID, StartedAt: now}
		}
		p.Attempts++
		return put(tx, bucketPendingExchanges, key, p)
	})
	return earlier, err
}

// AbandonExchange removes the mark of an exchange of publicToken; no mark
// is not an error. It returns EINVALID naming public_token when it is empty.
func (db *DB) AbandonExchange(ctx context.Context, publicToken string) error {
	if err := checkID("public_token", publicToken); err != nil {
		return err
	}
	return db.update(ctx, "abandon exchange", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPendingExchanges).Delete(publicTokenKey(publicToken))
	})
}
