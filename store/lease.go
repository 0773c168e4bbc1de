package store

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// TryLease takes or renews the named lease for owner until now+ttl and
// reports whether owner holds it: false while another owner's lease is
// live at now; a ttl of 0 releases owner's lease. It returns an EINVALID
// *linkd.Error naming name or owner when one is empty or too long, or ttl
// when it is negative.
func (db *DB) TryLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if err := checkID("name", name); err != nil {
		return false, err
	}
	if err := checkID("owner", owner); err != nil {
		return false, err
	}
	if ttl < 0 {
		return false, linkd.InvalidField("ttl", "ttl must not be negative")
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
		// The cursor stays: a new owner resumes the walk where it stood.
		return put(tx, bucketLeases, []byte(name), &storagev1.Lease{Owner: owner, ExpiresAt: timestamppb.New(now.Add(ttl)), Cursor: l.GetCursor()})
	})
	return held, err
}

// SetLeaseCursor records cursor with the named lease and reports whether
// owner holds it: false, recording nothing, when the lease is another
// owner's or there is none. EINVALID naming name or owner when one is
// empty or too long.
func (db *DB) SetLeaseCursor(ctx context.Context, name, owner, cursor string) (bool, error) {
	if err := checkID("name", name); err != nil {
		return false, err
	}
	if err := checkID("owner", owner); err != nil {
		return false, err
	}
	held := false
	err := db.update(ctx, "set lease cursor", func(tx *bbolt.Tx) error {
		held = false // a batch may run this twice
		var l storagev1.Lease
		if _, err := get(tx, bucketLeases, []byte(name), &l); err != nil {
			return err
		}
		if l.GetOwner() != owner {
			return nil
		}
		held = true
		if l.GetCursor() == cursor {
			return nil
		}
		l.Cursor = cursor
		return put(tx, bucketLeases, []byte(name), &l)
	})
	return held, err
}

// LeaseCursor returns the cursor last recorded with the named lease; ""
// when none was. EINVALID naming name when it is empty or too long.
func (db *DB) LeaseCursor(ctx context.Context, name string) (string, error) {
	if err := checkID("name", name); err != nil {
		return "", err
	}
	var l storagev1.Lease
	err := db.view(ctx, "lease cursor", func(tx *bbolt.Tx) error {
		_, err := get(tx, bucketLeases, []byte(name), &l)
		return err
	})
	return l.GetCursor(), err
}
