package store

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestDB_ClaimExchange_StalePendingLink: a pending_links entry whose claim
// a linkd from before pending links deleted (its PutItem or release, after
// a rollback) holds nobody back, and the claim that finds it removes it.
// It answered INTERNAL (a dangling index) for every later link at that
// institution.
func TestDB_ClaimExchange_StalePendingLink(t *testing.T) {
	ctx := context.Background()
	db := mustOpenSealed(t)
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	link := &linkd.PendingLink{InstitutionID: "ins_1", Accounts: []*linkdv1.Account{{Name: "Checking", Mask: "0000"}}}
	claim := func(pub string) linkd.ClaimResult {
		t.Helper()
		res, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: pub, ClientUserID: "user-1",
			Owner: "replica-" + pub, Now: now, TTL: time.Minute, Link: link})
		if err != nil {
			t.Fatalf("ClaimExchange(%s): %v", pub, err)
		}
		return res
	}
	if res := claim("pub-1"); !res.Claimed {
		t.Fatalf("first claim: %+v", res)
	}
	// What an older linkd's PutItem does to the claim: deletes the
	// record, knowing nothing of its pending_links entry.
	stale := pendingLinkKey("ins_1", "user-1", publicTokenKey("pub-1"))
	if err := db.bolt.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketExchangeClaims).Delete(publicTokenKey("pub-1"))
	}); err != nil {
		t.Fatal(err)
	}
	if res := claim("pub-2"); !res.Claimed || res.Repeats {
		t.Fatalf("claim beside a stale entry: %+v, want it granted", res)
	}
	if err := db.bolt.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketPendingLinks)
		if b.Get(stale) != nil {
			t.Error("the stale pending_links entry is still there")
		}
		if b.Get(pendingLinkKey("ins_1", "user-1", publicTokenKey("pub-2"))) == nil {
			t.Error("pub-2's pending_links entry is missing")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
