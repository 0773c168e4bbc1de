package store

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/seal"
)

// After a mix of writes that move index entries (institution changes,
// earlier events, deferred refreshes, deletes, prunes), every index entry
// names a record that agrees with it, and every record has its entries.
func TestDB_IndexesFollowRecords(t *testing.T) {
	ctx := context.Background()
	db := mustOpenSealed(t)
	var err error
	t0 := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	event := func(sid string, sec int) func(*linkdv1.LinkSession) (bool, error) {
		r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
			EventName: fmt.Sprint("E", sec), LinkSessionId: sid, Timestamp: timestamppb.New(t0.Add(time.Duration(sec) * time.Second)),
		}}}
		return linkd.MergeRedirect("link-1", "user-1", r, t0)
	}
	for i := range 30 {
		id := fmt.Sprintf("item-%02d", i)
		sid := fmt.Sprintf("sess-%02d", i)
		item := &linkdv1.Item{ItemId: id, ClientUserId: fmt.Sprint("user-", i%3), InstitutionId: fmt.Sprint("ins_", i%4), LinkSessionId: sid}
		_, err := db.PutItem(ctx, linkd.NewItem{Item: item, AccessToken: linkd.NewAccessToken("tok-" + id), PublicToken: "pub-" + id,
			Session: event(sid, 100+i), RefreshAt: t0.Add(time.Duration(i) * time.Minute)})
		must(err)
	}
	for i := range 30 {
		id := fmt.Sprintf("item-%02d", i)
		sid := fmt.Sprintf("sess-%02d", i)
		switch i % 5 {
		case 0:
			_, err = db.UpdateItem(ctx, id, linkd.SetItemDetails("ins_9", "", nil))
		case 1:
			_, err = db.UpdateLinkSession(ctx, sid, event(sid, i)) // an earlier event
		case 2:
			err = db.DeferItemRefresh(ctx, id, t0.Add(time.Hour))
		case 3:
			err = db.DeleteItem(ctx, id)
		case 4:
			_, err = db.UpdateRefreshedItem(ctx, id, linkd.SetItemDetails("", "Renamed", nil))
		}
		must(err)
	}
	_, err = db.Prune(ctx, linkd.PruneCutoffs{Sessions: t0.Add(10 * time.Second)})
	must(err)

	err = db.bolt.View(func(tx *bbolt.Tx) error {
		checkItemIndex(t, tx, bucketUserItems, func(it *linkdv1.Item) string { return it.GetClientUserId() })
		checkItemIndex(t, tx, bucketInstitutionItems, func(it *linkdv1.Item) string { return it.GetInstitutionId() })
		// session_starts ⇔ sessions
		starts := 0
		tx.Bucket(bucketSessionStarts).ForEach(func(k, _ []byte) error {
			starts++
			var s linkdv1.LinkSession
			if found, _ := get(tx, bucketSessions, k[8:], &s); !found {
				t.Errorf("session_starts names missing session %q", k[8:])
			} else if !bytes.Equal(sessionStartKey(&s), k) {
				t.Errorf("session_starts entry of %q is stale", k[8:])
			}
			return nil
		})
		if n := tx.Bucket(bucketSessions).Stats().KeyN; n != starts {
			t.Errorf("%d sessions, %d session_starts entries", n, starts)
		}
		// refresh_queue ⇔ the Items' refresh_due, each naming a stored Item
		queued := 0
		tx.Bucket(bucketRefreshQueue).ForEach(func(k, _ []byte) error {
			queued++
			id := string(k[8:])
			_, own, found, err := itemRecord(tx, k[8:])
			if err != nil || !found {
				t.Errorf("refresh_queue names missing item %q (%v)", id, err)
			} else if due := own.GetRefreshDue(); due == nil || !bytes.Equal(timeKey(due.AsTime(), id), k) {
				t.Errorf("refresh of %q is not its record's refresh_due %v", id, due)
			}
			return nil
		})
		// public_token_uses ⇔ the Items' public_token_sums
		uses := tx.Bucket(bucketPublicTokenUses).Stats().KeyN
		dues, sums := 0, 0
		tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			own, err := ownOf(v)
			if err != nil {
				t.Fatal(err)
			}
			if own.GetRefreshDue() != nil {
				dues++
			}
			for _, sum := range own.GetPublicTokenSums() {
				sums++
				var use storagev1.PublicTokenUse
				if found, _ := get(tx, bucketPublicTokenUses, sum, &use); !found || use.GetItemId() != string(k) {
					t.Errorf("public token use %x of %q is missing or names %q", sum, k, use.GetItemId())
				}
			}
			return nil
		})
		if dues != queued {
			t.Errorf("%d queued refreshes, %d Items with refresh_due", queued, dues)
		}
		if sums != uses {
			t.Errorf("%d public token uses, %d in Item records", uses, sums)
		}
		return nil
	})
	must(err)
	must(db.Check(ctx))
}

// checkItemIndex checks a str(id) be64(created_at) item_id index against
// the items bucket, both ways.
func checkItemIndex(t *testing.T, tx *bbolt.Tx, index []byte, idOf func(*linkdv1.Item) string) {
	t.Helper()
	entries := 0
	tx.Bucket(index).ForEach(func(k, _ []byte) error {
		entries++
		return nil
	})
	items := 0
	each(tx, bucketItems, newItem, func(_ []byte, it *linkdv1.Item) error {
		items++
		key := strTimeKey(idOf(it), it.GetCreatedAt().AsTime(), it.GetItemId())
		if tx.Bucket(index).Get(key) == nil {
			t.Errorf("%s has no entry for %s", index, it.GetItemId())
		}
		return nil
	})
	if entries != items {
		t.Errorf("%s has %d entries for %d items", index, entries, items)
	}
}

// mustOpenSealed opens a new store file in a temporary directory, with a
// master key, closed when the test ends.
func mustOpenSealed(t testing.TB) *DB {
	t.Helper()
	k, err := seal.ParseMasterKeys("k1:"+"ERERERERERERERERERERERERERERERERERERERERERE=", "")
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(k)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(filepath.Join(t.TempDir(), "linkd.db"), Options{Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
