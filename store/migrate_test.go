package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/store"
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
			putValue(t, tx, "items", []byte(id), item)
			putValue(t, tx, "user_items", v0UserItemKey("user-1", item.GetCreatedAt().AsTime(), id), nil)
			sealed, err := sealer.SealAccessToken(id, accessToken(id))
			if err != nil {
				t.Fatal(err)
			}
			putValue(t, tx, "access_tokens", []byte(id), sealed)
		}
		for _, s := range []*linkdv1.LinkSession{
			{LinkSessionId: "sess-late", FirstSeenAt: at(50)},
			{LinkSessionId: "sess-early", FirstSeenAt: at(5)},
		} {
			putValue(t, tx, "sessions", []byte(s.GetLinkSessionId()), s)
		}
		sum := sha256.Sum256([]byte("public-pending"))
		putValue(t, tx, "pending_exchanges", sum[:], &storagev1.PendingExchange{ClientUserId: "user-1", StartedAt: at(1), Attempts: 1})
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

// A file of version 1 (access tokens, queued refreshes' reverse entries
// and spent public tokens' reverse entries in buckets of their own) opens
// with each folded into its Item's record and the three buckets gone:
// every Item, token, queued refresh and public token use is found, and
// deleting an Item still removes its uses.
func TestOpen_MigratesVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	sealer := MustSealer(t, "k1:"+key1)
	ids3 := []string{"item-a", "item-b", "item-c"}
	// item-a: queued at 100, two public tokens; item-b: queued at 200 and
	// (a stray second entry) 300, one public token; item-c: nothing
	// queued, no public token. A queued refresh of a missing Item too.
	queued := map[string][]int{"item-a": {100}, "item-b": {200, 300}, "item-gone": {50}}
	publics := map[string][]string{"item-a": {"public-a1", "public-a2"}, "item-b": {"public-b1"}}
	writeVersion0(t, path, func(tx *bbolt.Tx) {
		putValue(t, tx, "meta", []byte("version"), &storagev1.SchemaVersion{Version: 1})
		for i, id := range ids3 {
			putV1Item(t, tx, sealer, id, "user-1", at(i))
		}
		for id, dues := range queued {
			for _, d := range dues {
				due := at(d).AsTime()
				putValue(t, tx, "refresh_queue", append(v1Time(due), id...), nil)
				putValue(t, tx, "item_refreshes", append(v1Str(id), v1Time(due)...), nil)
			}
		}
		for id, ps := range publics {
			for _, p := range ps {
				sum := sha256.Sum256([]byte(p))
				putValue(t, tx, "public_token_uses", sum[:], &storagev1.PublicTokenUse{ItemId: id, ExchangedAt: at(1)})
				putValue(t, tx, "item_public_tokens", append(v1Str(id), sum[:]...), nil)
			}
		}
		createV1Buckets(t, tx)
	})

	for range 2 { // the second Open finds nothing left to migrate
		db := MustOpenStoreWith(t, path, sealer)
		items, err := db.ListItems(ctx, "user-1")
		if err != nil || !slices.Equal(ids(items), ids3) {
			t.Fatalf("ListItems = %q, %v; want %q", ids(items), err, ids3)
		}
		for _, id := range ids3 {
			if tok, err := db.AccessToken(ctx, id); err != nil || tok != accessToken(id) {
				t.Fatalf("AccessToken(%s): %v", id, err)
			}
		}
		due, err := db.DueItemRefreshes(ctx, at(1000).AsTime(), 10)
		if err != nil || !slices.Equal(due, []string{"item-a", "item-b"}) {
			t.Fatalf("DueItemRefreshes = %q, %v; want item-a, item-b (each once, none of a missing Item)", due, err)
		}
		for id, ps := range publics {
			for _, p := range ps {
				if item, err := db.ItemForPublicToken(ctx, p); err != nil || item.GetItemId() != id {
					t.Fatalf("ItemForPublicToken(%s) = %v, %v; want %s", p, item, err, id)
				}
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		MustCheckFile(t, path)
	}

	db := MustOpenStoreWith(t, path, sealer)
	// item-b's refresh moves, and ends with its refresh.
	if err := db.DeferItemRefresh(ctx, "item-b", at(2000).AsTime()); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.DueItemRefreshes(ctx, at(1000).AsTime(), 10); !slices.Equal(due, []string{"item-a"}) {
		t.Fatalf("DueItemRefreshes after deferring item-b = %q, want item-a", due)
	}
	if _, err := db.UpdateRefreshedItem(ctx, "item-b", func(*linkdv1.Item) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.DueItemRefreshes(ctx, at(3000).AsTime(), 10); !slices.Equal(due, []string{"item-a"}) {
		t.Fatalf("DueItemRefreshes after refreshing item-b = %q, want item-a", due)
	}
	// Deleting item-a removes its queued refresh and both of its uses.
	if err := db.DeleteItem(ctx, "item-a"); err != nil {
		t.Fatal(err)
	}
	for _, p := range publics["item-a"] {
		_, err := db.ItemForPublicToken(ctx, p)
		wantCode(t, err, linkd.ENOTFOUND)
	}
	if due, _ := db.DueItemRefreshes(ctx, at(3000).AsTime(), 10); len(due) != 0 {
		t.Fatalf("DueItemRefreshes after deleting item-a = %q", due)
	}
	if item, err := db.ItemForPublicToken(ctx, "public-b1"); err != nil || item.GetItemId() != "item-b" {
		t.Fatalf("ItemForPublicToken(public-b1) = %v, %v", item, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	MustCheckFile(t, path)
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.View(func(tx *bbolt.Tx) error {
		for _, name := range []string{"access_tokens", "item_refreshes", "item_public_tokens"} {
			if tx.Bucket([]byte(name)) != nil {
				t.Errorf("%s survived the migration", name)
			}
		}
		var v storagev1.SchemaVersion
		if err := proto.Unmarshal(tx.Bucket([]byte("meta")).Get([]byte("version")), &v); err != nil || v.GetVersion() != 2 {
			t.Errorf("meta version = %v, %v; want 2", v.GetVersion(), err)
		}
		return nil
	})
}

// v1Str and v1Time are version 1's str(s) and be64(t), written out here
// so that the test does not lean on the code it checks.
func v1Str(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func v1Time(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())^(1<<63))
}

// v1Fixture describes a version 1 file of n Items, item-00 and up: every
// even one queued (due at(1000+i)), every sixth one queued a second,
// later time too (at(5000+i)), a queued refresh of a missing Item, and
// every third one with a spent public token.
type v1Fixture struct{ n int }

func (f v1Fixture) id(i int) string     { return fmt.Sprintf("item-%02d", i) }
func (f v1Fixture) public(i int) string { return fmt.Sprintf("public-%02d", i) }

// write lays the fixture out in a new version 1 file at path.
func (f v1Fixture) write(t *testing.T, path string, sealer linkd.Sealer) {
	t.Helper()
	queue := func(tx *bbolt.Tx, id string, due time.Time) {
		putValue(t, tx, "refresh_queue", append(v1Time(due), id...), nil)
		putValue(t, tx, "item_refreshes", append(v1Str(id), v1Time(due)...), nil)
	}
	writeVersion0(t, path, func(tx *bbolt.Tx) {
		putValue(t, tx, "meta", []byte("version"), &storagev1.SchemaVersion{Version: 1})
		for i := range f.n {
			id := f.id(i)
			putV1Item(t, tx, sealer, id, "user-1", at(i))
			if i%2 == 0 {
				queue(tx, id, at(1000+i).AsTime())
			}
			if i%6 == 0 {
				queue(tx, id, at(5000+i).AsTime())
			}
			if i%3 == 0 {
				sum := sha256.Sum256([]byte(f.public(i)))
				putValue(t, tx, "public_token_uses", sum[:], &storagev1.PublicTokenUse{ItemId: id, ExchangedAt: at(1)})
				putValue(t, tx, "item_public_tokens", append(v1Str(id), sum[:]...), nil)
			}
		}
		queue(tx, "item-gone", at(500).AsTime())
		createV1Buckets(t, tx)
	})
}

// check opens the file at path and fails t unless it holds the fixture's
// Items at version 2 (token, queued refresh, public tokens each), with
// token overriding an Item's access token.
func (f v1Fixture) check(t *testing.T, path string, sealer linkd.Sealer, token map[string]linkd.AccessToken) {
	t.Helper()
	ctx := context.Background()
	MustCheckFile(t, path)
	if v := fileVersion(t, path); v != 2 {
		t.Fatalf("version after the migration = %d, want 2", v)
	}
	db := MustOpenStoreWith(t, path, sealer)
	defer db.Close()
	var want []string
	for i := range f.n {
		id := f.id(i)
		want = append(want, id)
		tok, err := db.AccessToken(ctx, id)
		wantTok := accessToken(id)
		if o, ok := token[id]; ok {
			wantTok = o
		}
		if err != nil || tok != wantTok {
			t.Fatalf("AccessToken(%s): %v, or another token", id, err)
		}
		if i%3 == 0 {
			if item, err := db.ItemForPublicToken(ctx, f.public(i)); err != nil || item.GetItemId() != id {
				t.Fatalf("ItemForPublicToken(%s) = %v, %v", f.public(i), item, err)
			}
		}
	}
	for id := range token {
		if !slices.Contains(want, id) {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	items, err := db.ListItems(ctx, "user-1")
	got := ids(items)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListItems = %q, %v; want %q", got, err, want)
	}
}

// dueAfterMigration is what DueItemRefreshes lists of the fixture: each
// queued Item once, at its earliest time, and nothing of a missing Item.
func (f v1Fixture) due(skip ...string) []string {
	var due []string
	for i := 0; i < f.n; i += 2 {
		if !slices.Contains(skip, f.id(i)) {
			due = append(due, f.id(i))
		}
	}
	return due
}

// fileVersion reads the layout version of the file at path.
func fileVersion(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v storagev1.SchemaVersion
	err = b.View(func(tx *bbolt.Tx) error {
		return proto.Unmarshal(tx.Bucket([]byte("meta")).Get([]byte("version")), &v)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v.GetVersion()
}

// openMigrating opens the file at path with the migration run chunk
// Items a transaction, its failAt-th transaction failing (0: none), and
// returns how many of its transactions committed.
func openMigrating(t *testing.T, path string, sealer linkd.Sealer, chunk, failAt int) (int, error) {
	t.Helper()
	txs := 0
	db, err := store.Open(path, store.WithMigration(store.Options{Sealer: sealer, Now: newClock()}, chunk, failAt, &txs))
	if err == nil {
		err = db.Close()
	}
	return txs, err
}

// TestOpen_MigratesVersion1_Interrupted: the version 2 migration runs a
// few Items (or queue entries) a transaction; interrupted after any of
// them, it leaves a file still at version 1 that passes bbolt's check,
// and the next Open resumes where it stopped (it commits only the
// transactions left) and ends with every Item, token, queued refresh and
// public token use in place, as an uninterrupted one does.
func TestOpen_MigratesVersion1_Interrupted(t *testing.T) {
	ctx := context.Background()
	sealer := MustSealer(t, "k1:"+key1)
	f := v1Fixture{n: 30}
	const chunk = 4
	dir := t.TempDir()
	template := filepath.Join(dir, "v1.db")
	f.write(t, template, sealer)

	whole := filepath.Join(dir, "whole.db")
	copyFileT(t, template, whole)
	total, err := openMigrating(t, whole, sealer, chunk, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 30 Items, then 15+5+1 queue entries, 4 a transaction, and more
	// than one transaction each.
	if total < 2*(f.n/chunk) {
		t.Fatalf("the migration took %d transactions of %d, want one per chunk", total, chunk)
	}
	f.check(t, whole, sealer, nil)

	for k := 1; k <= total; k++ {
		t.Run(fmt.Sprintf("after%d", k-1), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "linkd.db")
			copyFileT(t, template, path)
			done, err := openMigrating(t, path, sealer, chunk, k)
			if err == nil || done != k-1 {
				t.Fatalf("Open failing the migration's transaction %d = %v, %d committed; want the failure, %d", k, err, done, k-1)
			}
			MustCheckFile(t, path)
			if v := fileVersion(t, path); v != 1 {
				t.Fatalf("an interrupted migration left version %d, want 1", v)
			}
			rest, err := openMigrating(t, path, sealer, chunk, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rest != total-done {
				t.Errorf("the resumed migration committed %d transactions, want the %d left", rest, total-done)
			}
			f.check(t, path, sealer, nil)
			db := MustOpenStoreWith(t, path, sealer)
			if due, err := db.DueItemRefreshes(ctx, at(10000).AsTime(), 1000); err != nil || !slices.Equal(due, f.due()) {
				t.Fatalf("DueItemRefreshes = %q, %v; want %q", due, err, f.due())
			}
		})
	}
}

// TestOpen_MigratesVersion1_ChangedMeanwhile: a linkd of version 1
// that opens a file whose migration was interrupted sees a version 1 file
// and may change it (a new Item, a new token, a refresh done); the next
// migration finds that another transaction wrote after its cursor and
// starts over, so that none of those changes is lost.
func TestOpen_MigratesVersion1_ChangedMeanwhile(t *testing.T) {
	ctx := context.Background()
	sealer := MustSealer(t, "k1:"+key1)
	f := v1Fixture{n: 30}
	path := filepath.Join(t.TempDir(), "linkd.db")
	f.write(t, path, sealer)
	if _, err := openMigrating(t, path, sealer, 4, 5); err == nil {
		t.Fatal("the hook did not interrupt the migration")
	}
	// What version 1 wrote for these: item-00 (folded already) gets a new
	// token, item-02's refresh is done, item-000 is new (before the
	// cursor).
	newToken := linkd.NewAccessToken("access-sandbox-rotated-item-00")
	writeVersion0(t, path, func(tx *bbolt.Tx) {
		sealed, err := sealer.SealAccessToken("item-00", newToken)
		if err != nil {
			t.Fatal(err)
		}
		putValue(t, tx, "access_tokens", []byte("item-00"), sealed)
		due := at(1002).AsTime()
		for bucket, key := range map[string][]byte{
			"refresh_queue":  append(v1Time(due), "item-02"...),
			"item_refreshes": append(v1Str("item-02"), v1Time(due)...),
		} {
			if err := tx.Bucket([]byte(bucket)).Delete(key); err != nil {
				t.Fatal(err)
			}
		}
		putV1Item(t, tx, sealer, "item-000", "user-1", at(999))
	})
	if _, err := openMigrating(t, path, sealer, 4, 0); err != nil {
		t.Fatal(err)
	}
	f.check(t, path, sealer, map[string]linkd.AccessToken{"item-00": newToken, "item-000": accessToken("item-000")})
	db := MustOpenStoreWith(t, path, sealer)
	if due, err := db.DueItemRefreshes(ctx, at(10000).AsTime(), 1000); err != nil || !slices.Equal(due, f.due("item-02")) {
		t.Fatalf("DueItemRefreshes = %q, %v; want %q", due, err, f.due("item-02"))
	}
}

// copyFileT copies the file at from to to.
func copyFileT(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
