package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/seal"
	"github.com/linkd/linkd/store"
	"github.com/linkd/linkd/storetest"
)

// Test master keys: fixed, so that a failure reproduces.
var (
	key1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x11}, 32))
	key2 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x22}, 32))
)

// clockStart is when the test clock starts.
var clockStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newClock returns a clock that starts at clockStart and moves a second
// forward at every reading, so that stored times are distinct and ordered.
func newClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return clockStart.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

// The bbolt store runs the whole conformance suite. It cannot run
// storetest.RunShared: bbolt locks its file, so one file never has two
// handles (replicas need a shared backend such as Postgres).
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, sealer linkd.Sealer) storetest.Backend {
		path := filepath.Join(t.TempDir(), "linkd.db")
		db := MustOpenStoreWith(t, path, sealer)
		return storetest.Backend{
			Store: db,
			Reopen: func(t *testing.T, sealer linkd.Sealer) linkd.Store {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db = MustOpenStoreWith(t, path, sealer)
				return db
			},
			Raw: func(t *testing.T) []byte {
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return raw
			},
		}
	})
}

// RunShared needs two handles on one backend, which a bbolt file cannot
// give (see TestStore). Running it with one handle twice proves little
// about sharing but keeps the suite itself exercised until a shared
// backend runs it.
func TestStore_SharedOneHandle(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T, sealer linkd.Sealer) (a, b linkd.Store) {
		db := MustOpenStoreWith(t, filepath.Join(t.TempDir(), "linkd.db"), sealer)
		return db, db
	})
}

// MustOpenStore opens a store in a new temporary directory with master key
// k1. At cleanup it closes the store and runs bbolt's consistency check on
// the file, failing the test on any error.
func MustOpenStore(tb testing.TB) *store.DB {
	tb.Helper()
	return MustOpenStoreAt(tb, filepath.Join(tb.TempDir(), "linkd.db"), "k1:"+key1)
}

// MustOpenStoreAt is MustOpenStore on a given file with the keys of a
// LINKD_MASTER_KEYS value.
func MustOpenStoreAt(tb testing.TB, path, keys string) *store.DB {
	tb.Helper()
	return MustOpenStoreWith(tb, path, MustSealer(tb, keys))
}

// MustOpenStoreWith is MustOpenStore on a given file with a given Sealer. A
// test may close the store early, for example to reopen the file; closing
// twice is harmless.
func MustOpenStoreWith(tb testing.TB, path string, sealer linkd.Sealer) *store.DB {
	tb.Helper()
	db, err := store.Open(path, store.Options{Sealer: sealer, Now: newClock()})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		MustCheckFile(tb, path)
	})
	return db
}

// MustSealer returns a Sealer for a LINKD_MASTER_KEYS value.
func MustSealer(tb testing.TB, keys string) *seal.Sealer {
	tb.Helper()
	k, err := seal.ParseMasterKeys(keys, "")
	if err != nil {
		tb.Fatalf("ParseMasterKeys: %v", err)
	}
	s, err := seal.New(k)
	if err != nil {
		tb.Fatalf("seal.New: %v", err)
	}
	return s
}

// MustCheckFile runs bbolt's consistency check on a closed database file.
func MustCheckFile(tb testing.TB, path string) {
	tb.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Fatalf("open for check: %v", err)
	}
	defer b.Close()
	err = b.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			tb.Errorf("consistency check: %v", err)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("check: %v", err)
	}
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := linkd.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// wantProto fails the test when got and want differ.
func wantProto(tb testing.TB, got, want proto.Message) {
	tb.Helper()
	if !proto.Equal(got, want) {
		tb.Fatalf("got  %v\nwant %v", got, want)
	}
}

// newItem returns an Item without created_at.
func newItem(itemID, clientUserID string) *linkdv1.Item {
	return &linkdv1.Item{
		ItemId:          itemID,
		ClientUserId:    clientUserID,
		InstitutionId:   "ins_3",
		InstitutionName: "Chase",
		Status:          linkdv1.ItemStatus_ITEM_STATUS_GOOD,
		Accounts: []*linkdv1.Account{
			{Id: "acc-" + itemID, Name: "Plaid Checking", Mask: "0000", Type: "depository", Subtype: "checking"},
		},
	}
}

// accessToken returns a distinct, realistic access token for an Item.
func accessToken(itemID string) linkd.AccessToken {
	return linkd.NewAccessToken("access-sandbox-5f3c9b2e-" + itemID + "-7a1d-4c6e-9f0b-2d8e4a6c1b3f")
}

// at returns a timestamp n seconds after clockStart.
func at(n int) *timestamppb.Timestamp {
	return timestamppb.New(clockStart.Add(time.Duration(n) * time.Second))
}

// connected returns PutItem's argument for a connected Link: the Item, its
// public token, and the connected redirect merged into its session.
func connected(itemID, sessionID, publicToken string) linkd.NewItem {
	item := newItem(itemID, "user-1")
	item.LinkSessionId = sessionID
	r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: publicToken, InstitutionId: "ins_3", LinkSessionId: sessionID,
	}}}
	return linkd.NewItem{
		Item: item, AccessToken: accessToken(itemID), PublicToken: publicToken,
		Session: linkd.MergeRedirect("link-1", "user-1", r, clockStart),
	}
}

func TestOpen(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "linkd.db")
		MustOpenStoreAt(t, path, "k1:"+key1)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("file mode = %04o, want 0600", perm)
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Errorf("dir mode = %04o, want 0700", perm)
		}
	})

	// Durability is the contract: every method returns after fsync.
	t.Run("NoSyncFalse", func(t *testing.T) {
		db := MustOpenStore(t)
		if store.BoltDB(db).NoSync {
			t.Fatal("NoSync is true")
		}
	})

	t.Run("ErrLocked", func(t *testing.T) {
		db := MustOpenStore(t)
		_, err := store.Open(db.Path(), store.Options{Sealer: MustSealer(t, "k1:"+key1), LockTimeout: 50 * time.Millisecond})
		wantCode(t, err, linkd.EUNAVAILABLE)
		if !errors.Is(err, bbolt.ErrTimeout) {
			t.Fatalf("err = %v, want bbolt.ErrTimeout in the chain", err)
		}
	})

	t.Run("ErrNoSealer", func(t *testing.T) {
		_, err := store.Open(filepath.Join(t.TempDir(), "linkd.db"), store.Options{})
		wantCode(t, err, linkd.EINVALID)
	})
}

func TestDB_Reopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	db := MustOpenStoreAt(t, path, "k1:"+key1)
	lt := &storagev1.StoredLinkToken{LinkToken: "link-1", ClientUserId: "user-1", CreatedAt: at(0)}
	if err := db.PutLinkToken(ctx, lt); err != nil {
		t.Fatal(err)
	}
	item, err := db.PutItem(ctx, connected("item-1", "sess-1", "public-1"))
	if err != nil {
		t.Fatal(err)
	}
	session, err := db.GetLinkSession(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	if lt, err = db.GetLinkToken(ctx, "link-1"); err != nil { // it counts the session now
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = MustOpenStoreAt(t, path, "k1:"+key1)
	gotLT, err := db.GetLinkToken(ctx, "link-1")
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, gotLT, lt)
	gotSession, err := db.GetLinkSession(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, gotSession, session)
	byPublic, err := db.ItemForPublicToken(ctx, "public-1")
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, byPublic, item)
	if tok, err := db.AccessToken(ctx, "item-1"); err != nil || tok != accessToken("item-1") {
		t.Fatalf("access token does not round-trip a reopen: %v", err)
	}
}

// The file holds no access token and no public token, nor any 12-byte
// piece of one, also in the pages deletes free.
func TestDB_SecretsNotInFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	db := MustOpenStoreAt(t, path, "k1:"+key1)
	var secrets []string
	for i := range 20 {
		id := fmt.Sprintf("item-%02d", i)
		public := fmt.Sprintf("public-sandbox-0b7e5a9c-%02d-4f1e-8d2a-6c3b9e7f1a5d", i)
		secrets = append(secrets, public, accessToken(id).Reveal())
		if _, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: public, ClientUserID: "user-1", Owner: "p1", Now: clockStart, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.PutItem(ctx, connected(id, fmt.Sprintf("sess-%02d", i), public)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if err := db.DeleteItem(ctx, fmt.Sprintf("item-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("item-19")) || !bytes.Contains(raw, []byte("sess-19")) {
		t.Fatal("the file does not hold the stored records; the scan proves nothing")
	}
	const n = 12
	for _, s := range secrets {
		for i := 0; i+n <= len(s); i++ {
			if piece := s[i : i+n]; bytes.Contains(raw, []byte(piece)) {
				t.Fatalf("the file holds %q, a piece of a token", piece)
			}
		}
	}
}

// Re-sealing never blocks readers: every token opens throughout.
func TestDB_ResealAccessTokens_Readers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	const n = 250
	old := MustOpenStoreAt(t, path, "k1:"+key1)
	for i := range n {
		id := fmt.Sprintf("item-%d", i)
		if _, err := old.PutItem(ctx, linkd.NewItem{Item: newItem(id, "user-1"), AccessToken: accessToken(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db := MustOpenStoreAt(t, path, "k1:"+key1+",k2:"+key2)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for i := r; !stop.Load(); i = (i + 7) % n {
				id := fmt.Sprintf("item-%d", i)
				if got, err := db.AccessToken(ctx, id); err != nil || got != accessToken(id) {
					t.Errorf("AccessToken(%s) during re-seal: %v", id, err)
					return
				}
			}
		})
	}
	total := storetest.ResealPass(t, db, 100)
	stop.Store(true)
	wg.Wait()
	if total != n {
		t.Fatalf("re-sealed %d, want %d", total, n)
	}
}

// TestDB_Backup: a backup taken while the store is open opens as a
// database of its own, passes the check, and holds what was written.
func TestDB_Backup(t *testing.T) {
	db := MustOpenStore(t)
	ctx := context.Background()
	if _, err := db.TryLease(ctx, "backup-test", "owner", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, f); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(path); err != nil {
		t.Fatalf("CheckFile(backup): %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("not a database"), 0o600)
	if err := store.CheckFile(junk); err == nil {
		t.Fatal("CheckFile(junk) succeeded")
	}
}

// TestDB_Backup_SlowReader: a backup whose reader stalls (linkctl piped
// to a slow disk, a hung network) holds its read transaction open; the
// database must still take writes that grow its file meanwhile. bbolt
// remaps a growing file only when no read transaction is open, and a
// writer waiting to remap holds up every new reader too: with a small
// initial map a stalled backup froze every read and write of linkd until
// it ended.
func TestDB_Backup_SlowReader(t *testing.T) {
	db := MustOpenStore(t)
	ctx := context.Background()
	stalled, release := make(chan struct{}), make(chan struct{})
	backupDone := make(chan error, 1)
	go func() {
		backupDone <- db.Backup(ctx, writerFunc(func(p []byte) (int, error) {
			select {
			case <-stalled:
			default:
				close(stalled)
			}
			<-release
			return len(p), nil
		}))
	}()
	<-stalled
	wrote := make(chan error, 1)
	go func() {
		// Far past the 32 KiB a new file maps: bbolt must grow it.
		for i := range 300 {
			lt := &storagev1.StoredLinkToken{LinkToken: fmt.Sprintf("link-sandbox-%06d", i), ClientUserId: "user", WebviewUrl: strings.Repeat("u", 1000)}
			if err := db.PutLinkToken(ctx, lt); err != nil {
				wrote <- err
				return
			}
		}
		_, err := db.GetLinkToken(ctx, "link-sandbox-000001")
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("writes during a stalled backup: %v", err)
		}
	case <-time.After(time.Minute):
		close(release)
		t.Fatal("writes that grow the file waited on a stalled backup's read transaction (bbolt remapping)")
	}
	close(release)
	if err := <-backupDone; err != nil {
		t.Fatalf("Backup: %v", err)
	}
}

// writerFunc is an io.Writer from a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// An Item's record holds its sealed access token; no Item any method
// returns (nor any an update function is given) carries its bytes, known
// or unknown to the API message, so no RPC can send them.
func TestDB_ItemsCarryNoSealedToken(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	const id, public = "item-1", "public-sandbox-1"
	n := connected(id, "sess-1", public)
	n.RefreshAt = clockStart.Add(time.Hour)
	if _, err := db.PutItem(ctx, n); err != nil {
		t.Fatal(err)
	}
	var sealed *storagev1.SealedAccessToken
	err := db.Export(ctx, func(r linkd.Record) error {
		if r.Item != nil {
			sealed = r.Item.Sealed
		}
		return nil
	})
	if err != nil || len(sealed.GetCiphertext()) == 0 || len(sealed.GetNonce()) == 0 {
		t.Fatalf("Export gave no sealed token (%v): the test would prove nothing", err)
	}
	clean := func(method string, item *linkdv1.Item) {
		t.Helper()
		if item.GetItemId() != id {
			t.Fatalf("%s returned %v, not %s", method, item, id)
		}
		b, err := proto.Marshal(item)
		if err != nil {
			t.Fatal(err)
		}
		if len(item.ProtoReflect().GetUnknown()) != 0 || bytes.Contains(b, sealed.GetCiphertext()) || bytes.Contains(b, sealed.GetNonce()) {
			t.Fatalf("the Item %s returned carries store fields or the sealed token", method)
		}
	}
	one := func(method string, items []*linkdv1.Item, err error) {
		t.Helper()
		if err != nil || len(items) != 1 {
			t.Fatalf("%s = %v, %v; want one Item", method, items, err)
		}
		clean(method, items[0])
	}
	touch := func(method string) func(*linkdv1.Item) (bool, error) {
		return func(item *linkdv1.Item) (bool, error) {
			clean(method+" (its update function)", item)
			item.InstitutionName += "!"
			return true, nil
		}
	}
	item, err := db.GetItem(ctx, id)
	one("GetItem", []*linkdv1.Item{item}, err)
	items, err := db.ListItems(ctx, "user-1")
	one("ListItems", items, err)
	items, err = db.ItemsAtInstitution(ctx, "ins_3")
	one("ItemsAtInstitution", items, err)
	items, err = db.ItemsAfter(ctx, "", 10)
	one("ItemsAfter", items, err)
	item, err = db.ItemForPublicToken(ctx, public)
	one("ItemForPublicToken", []*linkdv1.Item{item}, err)
	r, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: public, ClientUserID: "user-1", Owner: "p1", Now: clockStart, TTL: time.Minute})
	one("ClaimExchange", []*linkdv1.Item{r.Item}, err)
	item, err = db.UpdateItem(ctx, id, touch("UpdateItem"))
	one("UpdateItem", []*linkdv1.Item{item}, err)
	item, err = db.RecordWebhook(ctx, &storagev1.StoredWebhook{ItemId: id, Body: []byte("{}")}, "delivery-1", touch("RecordWebhook"))
	one("RecordWebhook", []*linkdv1.Item{item}, err)
	item, err = db.UpdateRefreshedItem(ctx, id, touch("UpdateRefreshedItem"))
	one("UpdateRefreshedItem", []*linkdv1.Item{item}, err)
	err = db.Export(ctx, func(r linkd.Record) error {
		if r.Item != nil {
			clean("Export", r.Item.Item)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The token stayed with its Item through every rewrite.
	if tok, err := db.AccessToken(ctx, id); err != nil || tok != accessToken(id) {
		t.Fatalf("AccessToken after the updates: %v", err)
	}
}
