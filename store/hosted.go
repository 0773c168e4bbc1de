package store

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
)

// HostedLinkTokensDue returns up to limit (MaxPageSize when zero or less)
// link tokens whose hosted check is due at now, the longest due first,
// from the hosted_checks index. It returns an EINTERNAL *linkd.Error when
// the store fails.
func (db *DB) HostedLinkTokensDue(ctx context.Context, now time.Time, limit int) ([]*storagev1.StoredLinkToken, error) {
	limit = pageLimit(limit)
	end := appendTime(nil, now.Add(1)) // due at now counts
	var out []*storagev1.StoredLinkToken
	err := db.view(ctx, "hosted link tokens due", func(tx *bbolt.Tx) error {
		out = nil
		c := tx.Bucket(bucketHostedChecks).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) <= 8 {
				return internal("hosted link tokens due", errMalformedKey)
			}
			if string(k[:8]) >= string(end) {
				break
			}
			t := new(storagev1.StoredLinkToken)
			if err := getLinkToken(tx, string(k[8:]), t); err != nil {
				return internal("hosted link tokens due", err)
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetHostedLinkTokenCheck moves a link token's hosted check to at, or ends
// its checks when at is zero, in its record and its index entries. It
// returns an ENOTFOUND *linkd.Error when the token is not recorded.
func (db *DB) SetHostedLinkTokenCheck(ctx context.Context, linkToken string, at time.Time) error {
	if err := checkID("link_token", linkToken); err != nil {
		return err
	}
	return db.update(ctx, "set hosted link token check", func(tx *bbolt.Tx) error {
		t := new(storagev1.StoredLinkToken)
		if err := getLinkToken(tx, linkToken, t); err != nil {
			return err
		}
		if err := unindexHostedCheck(tx, []byte(linkToken)); err != nil {
			return err
		}
		t.HostedCheckAt = nil
		if !at.IsZero() {
			t.HostedCheckAt = timestamppb.New(at)
		}
		if err := put(tx, bucketLinkTokens, []byte(linkToken), t); err != nil {
			return err
		}
		return indexHostedCheck(tx, t)
	})
}

// indexHostedCheck adds t's hosted check, if it has one, to hosted_checks
// and its reverse link_token_checks.
func indexHostedCheck(tx *bbolt.Tx, t *storagev1.StoredLinkToken) error {
	at := t.GetHostedCheckAt()
	if at == nil {
		return nil
	}
	due := appendTime(nil, at.AsTime())
	if err := tx.Bucket(bucketHostedChecks).Put(append(due, t.GetLinkToken()...), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketLinkTokenChecks).Put([]byte(t.GetLinkToken()), due)
}

// unindexHostedCheck removes a link token's hosted check entries, if any.
func unindexHostedCheck(tx *bbolt.Tx, linkToken []byte) error {
	reverse := tx.Bucket(bucketLinkTokenChecks)
	due := reverse.Get(linkToken)
	if due == nil {
		return nil
	}
	if len(due) != 8 {
		return internal("unindex hosted check", errMalformedKey)
	}
	if err := tx.Bucket(bucketHostedChecks).Delete(append(append([]byte(nil), due...), linkToken...)); err != nil {
		return err
	}
	return reverse.Delete(linkToken)
}

// SettleLinkToken records settled as the link token's final answer unless
// it has one already (the first stands). It returns an ENOTFOUND
// *linkd.Error when the token is not recorded.
func (db *DB) SettleLinkToken(ctx context.Context, linkToken string, settled *storagev1.LinkTokenSettlement) error {
	if err := checkID("link_token", linkToken); err != nil {
		return err
	}
	return db.update(ctx, "settle link token", func(tx *bbolt.Tx) error {
		t := new(storagev1.StoredLinkToken)
		if err := getLinkToken(tx, linkToken, t); err != nil {
			return err
		}
		if t.GetSettled() != nil {
			return nil
		}
		t.Settled = proto.CloneOf(settled)
		return put(tx, bucketLinkTokens, []byte(linkToken), t)
	})
}
