package store

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// PutLinkToken records a link token linkd issued, filling in created_at when
// unset. It returns an EINVALID *linkd.Error naming link_token or
// client_user_id when one is missing, and ECONFLICT when the token is
// recorded already.
func (db *DB) PutLinkToken(ctx context.Context, t *storagev1.StoredLinkToken) error {
	if err := checkID("link_token", t.GetLinkToken()); err != nil {
		return err
	}
	if err := checkID("client_user_id", t.GetClientUserId()); err != nil {
		return err
	}
	if t.GetCreatedAt() == nil {
		t = proto.CloneOf(t)
		t.CreatedAt = timestamppb.New(db.now())
	}
	return db.update(ctx, "put link token", func(tx *bbolt.Tx) error {
		return putLinkToken(tx, t)
	})
}

func putLinkToken(tx *bbolt.Tx, t *storagev1.StoredLinkToken) error {
	key := []byte(t.GetLinkToken())
	if tx.Bucket(bucketLinkTokens).Get(key) != nil {
		return linkd.Errorf(linkd.ECONFLICT, "link token is already recorded")
	}
	if err := put(tx, bucketLinkTokens, key, t); err != nil {
		return err
	}
	return indexHostedCheck(tx, t)
}

// GetLinkToken returns a link token linkd issued. It returns an ENOTFOUND
// *linkd.Error when there is no such token.
func (db *DB) GetLinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", linkToken); err != nil {
		return nil, err
	}
	var t storagev1.StoredLinkToken
	err := db.view(ctx, "get link token", func(tx *bbolt.Tx) error {
		return getLinkToken(tx, linkToken, &t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func getLinkToken(tx *bbolt.Tx, linkToken string, t *storagev1.StoredLinkToken) error {
	found, err := get(tx, bucketLinkTokens, []byte(linkToken), t)
	if err != nil {
		return err
	} else if !found {
		return linkd.Errorf(linkd.ENOTFOUND, "link token not found")
	}
	return nil
}

// RenewLinkToken records fresh as the renewal of the dead link token dead,
// storing fresh as a link token too, unless dead was renewed already with
// a token still alive at now; it returns the renewal that stands. It
// returns an EINVALID *linkd.Error naming link_token or client_user_id
// when fresh lacks one, ENOTFOUND when dead is not recorded, and ECONFLICT
// when fresh is recorded already with other fields.
func (db *DB) RenewLinkToken(ctx context.Context, dead string, fresh *storagev1.StoredLinkToken, now time.Time) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", dead); err != nil {
		return nil, err
	}
	if err := checkID("link_token", fresh.GetLinkToken()); err != nil {
		return nil, err
	}
	if err := checkID("client_user_id", fresh.GetClientUserId()); err != nil {
		return nil, err
	}
	if fresh.GetCreatedAt() == nil {
		fresh = proto.CloneOf(fresh)
		fresh.CreatedAt = timestamppb.New(db.now())
	}
	var stands *storagev1.StoredLinkToken
	err := db.update(ctx, "renew link token", func(tx *bbolt.Tx) error {
		stands = nil // a batch may run this twice
		if tx.Bucket(bucketLinkTokens).Get([]byte(dead)) == nil {
			return linkd.Errorf(linkd.ENOTFOUND, "link token not found")
		}
		earlier := new(storagev1.StoredLinkToken)
		if found, err := linkTokenRenewal(tx, dead, now, earlier); err != nil {
			return err
		} else if found {
			stands = earlier
			return nil
		}
		if err := putLinkToken(tx, fresh); err != nil {
			return err
		}
		r := &storagev1.LinkTokenRenewal{LinkToken: fresh.GetLinkToken(), RenewedAt: timestamppb.New(now)}
		if err := put(tx, bucketLinkTokenRenewals, []byte(dead), r); err != nil {
			return err
		}
		stands = fresh
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stands, nil
}

// LinkTokenRenewal returns the renewal of the dead link token dead that is
// alive at now. It returns an ENOTFOUND *linkd.Error when there is none.
func (db *DB) LinkTokenRenewal(ctx context.Context, dead string, now time.Time) (*storagev1.StoredLinkToken, error) {
	if err := checkID("link_token", dead); err != nil {
		return nil, err
	}
	t := new(storagev1.StoredLinkToken)
	err := db.view(ctx, "get link token renewal", func(tx *bbolt.Tx) error {
		found, err := linkTokenRenewal(tx, dead, now, t)
		if err == nil && !found {
			err = linkd.Errorf(linkd.ENOTFOUND, "link token has no live renewal")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// linkTokenRenewal loads into t the token that renewed dead and reports
// whether there is one alive at now (a token without an expiration is).
func linkTokenRenewal(tx *bbolt.Tx, dead string, now time.Time, t *storagev1.StoredLinkToken) (bool, error) {
	var r storagev1.LinkTokenRenewal
	if found, err := get(tx, bucketLinkTokenRenewals, []byte(dead), &r); err != nil || !found {
		return false, err
	}
	if found, err := get(tx, bucketLinkTokens, []byte(r.GetLinkToken()), t); err != nil || !found {
		return false, err // pruned: as good as expired
	}
	if exp := t.GetExpiration(); exp != nil && !exp.AsTime().After(now) {
		return false, nil
	}
	return true, nil
}
