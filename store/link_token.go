package store

import (
	"context"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// PutLinkToken records a link token linkd issued, filling in created_at when
// unset. Recording the same token again with the same fields is a no-op. It
// returns an EINVALID *linkd.Error naming link_token or client_user_id when
// one is missing, and ECONFLICT when the token is recorded with other
// fields.
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
	var old storagev1.StoredLinkToken
	if found, err := get(tx, bucketLinkTokens, key, &old); err != nil {
		return err
	} else if found {
		// A retry sets created_at anew unless the caller did; compare the rest.
		old.CreatedAt, t = nil, proto.CloneOf(t)
		t.CreatedAt = nil
		if proto.Equal(&old, t) {
			return nil
		}
		return linkd.Errorf(linkd.ECONFLICT, "link token is already recorded")
	}
	return put(tx, bucketLinkTokens, key, t)
}

// GetLinkToken returns a link token linkd issued. It returns an ENOTFOUND
// *linkd.Error when there is no such token.
func (db *DB) GetLinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error) {
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
