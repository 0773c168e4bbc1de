package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// A file of the previous release (version 0: no meta bucket, no indexes
// but user_items, pending exchange marks) opens, gets its indexes built,
// and its pending marks become claims whose outcome is unknown.
func TestOpen_MigratesVersion0(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	sealer := MustSealer(t, "k1:"+key1)
	writeVersion0(t, path, func(tx *bbolt.Tx) {
		for i, id := range []string{"item-b", "item-a"} {
			item := newItem(id, "user-1")
			item.CreatedAt = at(10 - i)
			putRaw(t, tx, "items", []byte(id), item)
			putRaw(t, tx, "user_items", v0UserItemKey("user-1", item.GetCreatedAt().AsTime(), id), nil)
			sealed, err := sealer.SealAccessToken(id, accessToken(id))
			if err != nil {
				t.Fatal(err)
			}
			putRaw(t, tx, "access_tokens", []byte(id), sealed)
		}
		for _, s := range []*linkdv1.LinkSession{
			{LinkSessionId: "sess-late", FirstSeenAt: at(50)},
			{LinkSessionId: "sess-early", FirstSeenAt: at(5)},
		} {
			putRaw(t, tx, "sessions", []byte(s.GetLinkSessionId()), s)
		}
		sum := sha256.Sum256([]byte("public-pending"))
		putRaw(t, tx, "pending_exchanges", sum[:], &storagev1.PendingExchange{ClientUserId: "user-1", StartedAt: at(1), Attempts: 1})
		for _, name := range []string{"link_tokens", "public_token_uses", "item_public_tokens", "webhooks"} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				t.Fatal(err)
			}
		}
	})

	for range 2 { // the second Open finds nothing left to migrate
		db := MustOpenStoreWith(t, path, sealer)
		items, err := db.ItemsAtInstitution(ctx, "ins_3")
		if err != nil || !slices.Equal(ids(items), []string{"item-a", "item-b"}) {
			t.Fatalf("ItemsAtInstitution = %q, %v; want item-a, item-b", ids(items), err)
		}
		if items, _ := db.ListItems(ctx, "user-1"); !slices.Equal(ids(items), []string{"item-a", "item-b"}) {
			t.Fatalf("ListItems = %q", ids(items))
		}
		if tok, err := db.AccessToken(ctx, "item-a"); err != nil || tok != accessToken("item-a") {
			t.Fatalf("AccessToken: %v", err)
		}
		sessions, _, err := db.LinkSessions(ctx, at(0).AsTime(), at(100).AsTime(), "", 10)
		if err != nil || len(sessions) != 2 || sessions[0].GetLinkSessionId() != "sess-early" {
			t.Fatalf("LinkSessions = %v, %v; want sess-early, sess-late", sessions, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := MustOpenStoreWith(t, path, sealer)
	r, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: "public-pending", ClientUserID: "user-1", Owner: "p1", Now: clockStart, TTL: time.Minute})
	if err != nil || !r.Claimed || !r.Earlier {
		t.Fatalf("claim of a version 0 pending exchange = %+v, %v; want Claimed and Earlier", r, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("pending_exchanges")) != nil {
			t.Error("pending_exchanges survived the migration")
		}
		return nil
	})
}

// writeVersion0 writes a bbolt file the way the previous release laid it
// out, filled by fill.
func writeVersion0(t *testing.T, path string, fill func(tx *bbolt.Tx)) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bbolt.Tx) error {
		fill(tx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// putRaw writes m (nil: an empty index value) into bucket, creating it.
func putRaw(t *testing.T, tx *bbolt.Tx, bucket string, key []byte, m proto.Message) {
	t.Helper()
	bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		t.Fatal(err)
	}
	var v []byte
	if m != nil {
		if v, err = proto.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := bk.Put(key, v); err != nil {
		t.Fatal(err)
	}
}

// v0UserItemKey is version 0's user_items key, written out here so that
// the test does not lean on the code it checks.
func v0UserItemKey(user string, created time.Time, itemID string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(user)))
	b = append(b, user...)
	b = binary.BigEndian.AppendUint64(b, uint64(created.UnixNano())^(1<<63))
	return append(b, itemID...)
}

func ids(items []*linkdv1.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.GetItemId())
	}
	return out
}
