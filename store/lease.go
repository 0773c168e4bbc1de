package store

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// TryLease takes or renews the named lease for owner until now+ttl and
// reports whether owner holds it: false while another owner's lease is
// live at now. It returns an EINVALID *linkd.Error naming name or owner
// when one is empty or too long.
func (db *DB) TryLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if err := checkID("name", name); err != nil {
		return false, err
	}
	if err := checkID("owner", owner); err != nil {
		return false, err
	}
	held := false
	err := db.update(ctx, "try lease", func(tx *bbolt.Tx) error {
		held = false // a batch may run this twice
		var l storagev1.Lease
		if _, err := get(tx, bucketLeases, []byte(name), &l); err != nil {
			return err
		}
		if l.GetOwner() != "" && l.GetOwner() != owner && l.GetExpiresAt().AsTime().After(now) {
			return nil
		}
		held = true
		return put(tx, bucketLeases, []byte(name), &storagev1.Lease{Owner: owner, ExpiresAt: timestamppb.New(now.Add(ttl))})
	})
	return held, err
}
