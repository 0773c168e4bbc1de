package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/linkd/linkd/store"
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

// MustOpenStore opens a store in a new temporary directory with master key
// k1. At cleanup it closes the store and runs bbolt's consistency check on
// the file, failing the test on any error.
func MustOpenStore(tb testing.TB) *store.DB {
	tb.Helper()
	return MustOpenStoreAt(tb, filepath.Join(tb.TempDir(), "linkd.db"), MustParseKeys(tb, "k1:"+key1))
}

// MustOpenStoreAt is MustOpenStore on a given file with given keys. A test
// may close the store early, for example to reopen the file.
func MustOpenStoreAt(tb testing.TB, path string, keys store.Keyring) *store.DB {
	tb.Helper()
	db, err := store.Open(path, store.Options{Keys: keys, Now: newClock()})
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

// MustParseKeys parses a LINKD_MASTER_KEYS value.
func MustParseKeys(tb testing.TB, s string) store.Keyring {
	tb.Helper()
	k, err := store.ParseMasterKeys(s)
	if err != nil {
		tb.Fatalf("ParseMasterKeys: %v", err)
	}
	return k
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := linkd.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// wantField fails the test unless err is EINVALID naming field.
func wantField(tb testing.TB, err error, field string) {
	tb.Helper()
	wantCode(tb, err, linkd.EINVALID)
	var e *linkd.Error
	if !errors.As(err, &e) || e.Field != field {
		tb.Fatalf("error field = %q, want %q (err: %v)", e.Field, field, err)
	}
}

// wantProto fails the test when got and want differ.
func wantProto(tb testing.TB, got, want proto.Message) {
	tb.Helper()
	if !proto.Equal(got, want) {
		tb.Fatalf("got  %v\nwant %v", got, want)
	}
}

// wantStrings fails the test when got and want differ.
func wantStrings(tb testing.TB, what string, got, want []string) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Fatalf("%s = %q, want %q", what, got, want)
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

// eventRedirect returns an event redirect; ts nil leaves the timestamp out.
func eventRedirect(sessionID, name string, ts *timestamppb.Timestamp) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
		EventName: name, LinkSessionId: sessionID, Timestamp: ts,
	}}}
}

// connectedRedirect returns a connected redirect carrying publicToken.
func connectedRedirect(sessionID, publicToken string) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken:     publicToken,
		InstitutionId:   "ins_3",
		InstitutionName: "Chase",
		LinkSessionId:   sessionID,
		Accounts:        []*linkdv1.Account{{Id: "acc-1", Name: "Plaid Checking", Mask: "0000"}},
	}}}
}

// exitRedirect returns an exit redirect with status.
func exitRedirect(sessionID, status string) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Exit{Exit: &linkdv1.ExitResult{
		Status: status, LinkSessionId: sessionID, RequestId: "req-1",
	}}}
}

// eventNames returns the names of a session's events, in order.
func eventNames(s *linkdv1.LinkSession) []string {
	var names []string
	for _, e := range s.GetEvents() {
		names = append(names, e.GetEventName())
	}
	return names
}

func TestOpen(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "linkd.db")
		MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1))
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
		_, err := store.Open(db.Path(), store.Options{Keys: MustParseKeys(t, "k1:"+key1), LockTimeout: 50 * time.Millisecond})
		wantCode(t, err, linkd.EUNAVAILABLE)
		if !errors.Is(err, bbolt.ErrTimeout) {
			t.Fatalf("err = %v, want bbolt.ErrTimeout in the chain", err)
		}
	})

	t.Run("ErrNoKeys", func(t *testing.T) {
		_, err := store.Open(filepath.Join(t.TempDir(), "linkd.db"), store.Options{})
		wantCode(t, err, linkd.EINVALID)
	})
}

func TestDB_Check(t *testing.T) {
	db := MustOpenStore(t)
	ctx := context.Background()
	for i := range 50 {
		id := fmt.Sprintf("item-%d", i)
		if err := db.PutItem(ctx, newItem(id, "user-1"), accessToken(id), "public-"+id); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestDB_ContextDone(t *testing.T) {
	db := MustOpenStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), "")
	wantCode(t, err, linkd.EUNAVAILABLE)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled in the chain", err)
	}
	_, err = db.GetItem(context.Background(), "item-1")
	wantCode(t, err, linkd.ENOTFOUND)
}

func TestDB_PutLinkToken(t *testing.T) {
	ctx := context.Background()
	token := func() *storagev1.StoredLinkToken {
		return &storagev1.StoredLinkToken{
			LinkToken:    "link-sandbox-af1a0311-da53-4636-b754-dd15cc058176",
			ClientUserId: "user-1",
			Expiration:   at(4 * 3600),
			WebviewUrl:   "https://cdn.plaid.com/link/v2/stable/link.html?isWebview=true&token=link-sandbox-af1a0311",
			RequestId:    "req-1",
		}
	}

	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.PutLinkToken(ctx, token()); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetLinkToken(ctx, token().GetLinkToken())
		if err != nil {
			t.Fatal(err)
		}
		want := token()
		want.CreatedAt = at(0) // the store's clock
		wantProto(t, got, want)
	})

	t.Run("Retry", func(t *testing.T) {
		db := MustOpenStore(t)
		for range 2 {
			if err := db.PutLinkToken(ctx, token()); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.PutLinkToken(ctx, token()); err != nil {
			t.Fatal(err)
		}
		other := token()
		other.ClientUserId = "user-2"
		wantCode(t, db.PutLinkToken(ctx, other), linkd.ECONFLICT)
		got, err := db.GetLinkToken(ctx, token().GetLinkToken())
		if err != nil {
			t.Fatal(err)
		}
		if got.GetClientUserId() != "user-1" {
			t.Fatalf("client_user_id = %q, want the first record's", got.GetClientUserId())
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		db := MustOpenStore(t)
		wantField(t, db.PutLinkToken(ctx, &storagev1.StoredLinkToken{ClientUserId: "user-1"}), "link_token")
		wantField(t, db.PutLinkToken(ctx, &storagev1.StoredLinkToken{LinkToken: "link-1"}), "client_user_id")
		wantField(t, db.PutLinkToken(ctx, nil), "link_token")
	})
}

func TestDB_GetLinkToken(t *testing.T) {
	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenStore(t)
		_, err := db.GetLinkToken(context.Background(), "link-sandbox-nope")
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

func TestDB_PutItem(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		item := newItem("item-1", "user-1")
		if err := db.PutItem(ctx, item, accessToken("item-1"), "public-sandbox-1"); err != nil {
			t.Fatal(err)
		}
		if item.GetCreatedAt() != nil {
			t.Fatal("PutItem changed the caller's Item")
		}
		got, err := db.GetItem(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		want := newItem("item-1", "user-1")
		want.CreatedAt = at(0)
		wantProto(t, got, want)

		tok, err := db.AccessToken(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		if tok != accessToken("item-1") {
			t.Fatal("access token does not round-trip")
		}
		byPublic, err := db.ItemForPublicToken(ctx, "public-sandbox-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, byPublic, want)
	})

	t.Run("KeepsCreatedAt", func(t *testing.T) {
		db := MustOpenStore(t)
		item := newItem("item-1", "user-1")
		item.CreatedAt = at(-3600)
		if err := db.PutItem(ctx, item, accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetItem(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, item)
	})

	t.Run("LinksSession", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.RecordRedirect(ctx, "link-1", "user-1", connectedRedirect("sess-1", "public-1")); err != nil {
			t.Fatal(err)
		}
		item := newItem("item-1", "user-1")
		item.LinkSessionId = "sess-1"
		if err := db.PutItem(ctx, item, accessToken("item-1"), "public-1"); err != nil {
			t.Fatal(err)
		}
		s, err := db.GetLinkSession(ctx, "sess-1")
		if err != nil {
			t.Fatal(err)
		}
		if s.GetItemId() != "item-1" {
			t.Fatalf("session item_id = %q, want item-1", s.GetItemId())
		}
	})

	t.Run("SessionNotRecorded", func(t *testing.T) {
		db := MustOpenStore(t)
		item := newItem("item-1", "user-1")
		item.LinkSessionId = "sess-1"
		if err := db.PutItem(ctx, item, accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		_, err := db.GetLinkSession(ctx, "sess-1")
		wantCode(t, err, linkd.ENOTFOUND)
	})

	t.Run("ErrConflict", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.PutItem(ctx, newItem("item-1", "user-2"), accessToken("item-x"), ""), linkd.ECONFLICT)
		tok, err := db.AccessToken(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		if tok != accessToken("item-1") {
			t.Fatal("the conflicting PutItem replaced the access token")
		}
	})

	// A spent public token fails the whole transaction: no half-stored Item.
	t.Run("ErrConflictPublicToken", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), "public-1"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.PutItem(ctx, newItem("item-2", "user-1"), accessToken("item-2"), "public-1"), linkd.ECONFLICT)
		_, err := db.GetItem(ctx, "item-2")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = db.AccessToken(ctx, "item-2")
		wantCode(t, err, linkd.ENOTFOUND)
		items, err := db.ListItems(ctx, "user-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 {
			t.Fatalf("ListItems = %d items, want 1", len(items))
		}
	})

	t.Run("SessionKeepsFirstItem", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.RecordRedirect(ctx, "link-1", "user-1", connectedRedirect("sess-1", "public-1")); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"item-1", "item-2"} {
			item := newItem(id, "user-1")
			item.LinkSessionId = "sess-1"
			// A second Item from one session is stored all the same: Plaid
			// made it, and its access token must not be dropped.
			if err := db.PutItem(ctx, item, accessToken(id), ""); err != nil {
				t.Fatalf("PutItem(%s): %v", id, err)
			}
		}
		if s, err := db.GetLinkSession(ctx, "sess-1"); err != nil || s.GetItemId() != "item-1" {
			t.Errorf("session item_id = %q, %v; want the first, item-1", s.GetItemId(), err)
		}
		if _, err := db.AccessToken(ctx, "item-2"); err != nil {
			t.Errorf("second Item's token: %v", err)
		}
		// Once the first Item is deleted, the session may name another.
		if err := db.DeleteItem(ctx, "item-1"); err != nil {
			t.Fatal(err)
		}
		item := newItem("item-3", "user-1")
		item.LinkSessionId = "sess-1"
		if err := db.PutItem(ctx, item, accessToken("item-3"), ""); err != nil {
			t.Fatal(err)
		}
		if s, err := db.GetLinkSession(ctx, "sess-1"); err != nil || s.GetItemId() != "item-3" {
			t.Errorf("session item_id = %q, %v; want item-3", s.GetItemId(), err)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		db := MustOpenStore(t)
		for _, tt := range []struct {
			name  string
			item  *linkdv1.Item
			token linkd.AccessToken
			field string
		}{
			{"NilItem", nil, accessToken("x"), "item_id"},
			{"NoItemID", newItem("", "user-1"), accessToken("x"), "item_id"},
			{"NoClientUserID", newItem("item-1", ""), accessToken("x"), "client_user_id"},
			{"LongItemID", newItem(string(make([]byte, 2000)), "user-1"), accessToken("x"), "item_id"},
			{"NoAccessToken", newItem("item-1", "user-1"), linkd.AccessToken{}, "access_token"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantField(t, db.PutItem(ctx, tt.item, tt.token, ""), tt.field)
			})
		}
	})
}

func TestDB_GetItem(t *testing.T) {
	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenStore(t)
		_, err := db.GetItem(context.Background(), "item-nope")
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

func TestDB_ListItems(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		// Users whose ids prefix one another, or hold a NUL, must not mix.
		users := []string{"user-1", "user-10", "user-1\x00x", "user"}
		created := map[string]*timestamppb.Timestamp{
			"item-c": at(-10), // older than its id or insertion order suggests
			"item-a": at(5),
			"item-b": at(5), // same time: ordered by item_id
			"item-d": at(100),
		}
		for _, id := range []string{"item-d", "item-b", "item-c", "item-a"} {
			for _, u := range users {
				item := newItem(id+"@"+u, u)
				item.CreatedAt = created[id]
				if err := db.PutItem(ctx, item, accessToken(id), ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, u := range users {
			items, err := db.ListItems(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.GetItemId())
			}
			wantStrings(t, fmt.Sprintf("ListItems(%q)", u), got, []string{"item-c@" + u, "item-a@" + u, "item-b@" + u, "item-d@" + u})
		}
	})

	t.Run("None", func(t *testing.T) {
		db := MustOpenStore(t)
		items, err := db.ListItems(ctx, "user-nope")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 0 {
			t.Fatalf("ListItems = %v, want none", items)
		}
	})
}

func TestDB_AccessToken(t *testing.T) {
	ctx := context.Background()

	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenStore(t)
		_, err := db.AccessToken(ctx, "item-nope")
		wantCode(t, err, linkd.ENOTFOUND)
	})

	// Rotation: a newer key becomes current; tokens sealed with the old one
	// still open, and new tokens are sealed with the new one.
	t.Run("KeyRotation", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "linkd.db")
		db := MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1))
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		db = MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1+",k2:"+key2))
		if tok, err := db.AccessToken(ctx, "item-1"); err != nil {
			t.Fatal(err)
		} else if tok != accessToken("item-1") {
			t.Fatal("old token does not round-trip")
		}
		if err := db.PutItem(ctx, newItem("item-2", "user-1"), accessToken("item-2"), ""); err != nil {
			t.Fatal(err)
		}
		if tok, err := db.AccessToken(ctx, "item-2"); err != nil {
			t.Fatal(err)
		} else if tok != accessToken("item-2") {
			t.Fatal("new token does not round-trip")
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		for id, kid := range map[string]string{"item-1": "k1", "item-2": "k2"} {
			if got := rawSealed(t, path, id).GetKeyId(); got != kid {
				t.Errorf("%s sealed with %q, want %q", id, got, kid)
			}
		}
	})

	t.Run("ErrUnknownKey", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "linkd.db")
		db := MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1))
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db = MustOpenStoreAt(t, path, MustParseKeys(t, "k2:"+key2))
		_, err := db.AccessToken(ctx, "item-1")
		wantCode(t, err, linkd.EINTERNAL)
	})

	t.Run("ErrWrongKey", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "linkd.db")
		db := MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1))
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db = MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key2))
		_, err := db.AccessToken(ctx, "item-1")
		wantCode(t, err, linkd.EINTERNAL)
	})

	// The item_id is the seal's additional data: a sealed token copied to
	// another Item does not open.
	t.Run("ErrMovedRecord", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "linkd.db")
		keys := MustParseKeys(t, "k1:"+key1)
		db := MustOpenStoreAt(t, path, keys)
		for _, id := range []string{"item-1", "item-2"} {
			if err := db.PutItem(ctx, newItem(id, "user-1"), accessToken(id), ""); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		b, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = b.Update(func(tx *bbolt.Tx) error {
			bk := tx.Bucket([]byte("access_tokens"))
			return bk.Put([]byte("item-2"), bytes.Clone(bk.Get([]byte("item-1"))))
		})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		db = MustOpenStoreAt(t, path, keys)
		_, err = db.AccessToken(ctx, "item-2")
		wantCode(t, err, linkd.EINTERNAL)
	})
}

// rawSealed reads an Item's sealed token straight from a closed file.
func rawSealed(tb testing.TB, path, itemID string) *storagev1.SealedAccessToken {
	tb.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	sealed := new(storagev1.SealedAccessToken)
	err = b.View(func(tx *bbolt.Tx) error {
		return proto.Unmarshal(tx.Bucket([]byte("access_tokens")).Get([]byte(itemID)), sealed)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return sealed
}

func TestDB_DeleteItem(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		for _, id := range []string{"item-1", "item-2"} {
			if err := db.PutItem(ctx, newItem(id, "user-1"), accessToken(id), "public-"+id); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.DeleteItem(ctx, "item-1"); err != nil {
			t.Fatal(err)
		}
		_, err := db.GetItem(ctx, "item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = db.AccessToken(ctx, "item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		_, err = db.ItemForPublicToken(ctx, "public-item-1")
		wantCode(t, err, linkd.ENOTFOUND)
		items, err := db.ListItems(ctx, "user-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0].GetItemId() != "item-2" {
			t.Fatalf("ListItems = %v, want item-2 only", items)
		}
		// The other Item is whole.
		if _, err := db.ItemForPublicToken(ctx, "public-item-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AccessToken(ctx, "item-2"); err != nil {
			t.Fatal(err)
		}
		// The use is gone, not only hidden: the id and token can be stored again.
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), "public-item-1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenStore(t)
		wantCode(t, db.DeleteItem(ctx, "item-nope"), linkd.ENOTFOUND)
	})
}

func TestDB_ItemForPublicToken(t *testing.T) {
	ctx := context.Background()
	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), "public-1"); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{"public-2", ""} {
			_, err := db.ItemForPublicToken(ctx, tok)
			wantCode(t, err, linkd.ENOTFOUND)
		}
	})
}

func TestDB_RecordRedirect(t *testing.T) {
	ctx := context.Background()

	// record files redirects for link-1/user-1 and fails on error.
	record := func(t *testing.T, db *store.DB, rs ...*linkdv1.WebviewRedirect) {
		t.Helper()
		for _, r := range rs {
			if err := db.RecordRedirect(ctx, "link-1", "user-1", r); err != nil {
				t.Fatalf("RecordRedirect: %v", err)
			}
		}
	}
	session := func(t *testing.T, db *store.DB) *linkdv1.LinkSession {
		t.Helper()
		s, err := db.GetLinkSession(ctx, "sess-1")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Events are ordered by timestamp, whatever order they arrive in.
	for _, tt := range []struct {
		name   string
		events []*linkdv1.WebviewRedirect // in arrival order
		want   []string                   // event names in stored order
	}{
		{
			name:   "InOrder",
			events: []*linkdv1.WebviewRedirect{eventRedirect("sess-1", "OPEN", at(1)), eventRedirect("sess-1", "TRANSITION_VIEW", at(2)), eventRedirect("sess-1", "HANDOFF", at(3))},
			want:   []string{"OPEN", "TRANSITION_VIEW", "HANDOFF"},
		},
		{
			name:   "OutOfOrder",
			events: []*linkdv1.WebviewRedirect{eventRedirect("sess-1", "HANDOFF", at(3)), eventRedirect("sess-1", "OPEN", at(1)), eventRedirect("sess-1", "TRANSITION_VIEW", at(2))},
			want:   []string{"OPEN", "TRANSITION_VIEW", "HANDOFF"},
		},
		{
			// Equal timestamps keep arrival order.
			name:   "EqualTimestamps",
			events: []*linkdv1.WebviewRedirect{eventRedirect("sess-1", "B", at(2)), eventRedirect("sess-1", "C", at(2)), eventRedirect("sess-1", "A", at(1)), eventRedirect("sess-1", "D", at(2))},
			want:   []string{"A", "B", "C", "D"},
		},
		{
			// An event without a timestamp stays where it arrived; later
			// events are not moved before it.
			name:   "MissingTimestamp",
			events: []*linkdv1.WebviewRedirect{eventRedirect("sess-1", "B", at(2)), eventRedirect("sess-1", "X", nil), eventRedirect("sess-1", "D", at(4)), eventRedirect("sess-1", "C", at(3)), eventRedirect("sess-1", "A", at(1))},
			want:   []string{"B", "X", "A", "C", "D"},
		},
		{
			// A retried event is not added twice, even after others.
			name:   "Duplicates",
			events: []*linkdv1.WebviewRedirect{eventRedirect("sess-1", "OPEN", at(1)), eventRedirect("sess-1", "OPEN", at(1)), eventRedirect("sess-1", "HANDOFF", at(3)), eventRedirect("sess-1", "OPEN", at(1)), eventRedirect("sess-1", "X", nil), eventRedirect("sess-1", "X", nil)},
			want:   []string{"OPEN", "HANDOFF", "X"},
		},
		{
			// Same name and time but another field: a different event.
			name: "NearDuplicates",
			events: []*linkdv1.WebviewRedirect{
				eventRedirect("sess-1", "TRANSITION_VIEW", at(1)),
				{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{EventName: "TRANSITION_VIEW", LinkSessionId: "sess-1", Timestamp: at(1), ViewName: "CONSENT"}}},
			},
			want: []string{"TRANSITION_VIEW", "TRANSITION_VIEW"},
		},
	} {
		t.Run("Events/"+tt.name, func(t *testing.T) {
			db := MustOpenStore(t)
			record(t, db, tt.events...)
			s := session(t, db)
			wantStrings(t, "events", eventNames(s), tt.want)
			if s.GetLinkToken() != "link-1" || s.GetClientUserId() != "user-1" || s.GetLinkSessionId() != "sess-1" {
				t.Fatalf("session binding = %q %q %q", s.GetLinkSessionId(), s.GetLinkToken(), s.GetClientUserId())
			}
		})
	}

	t.Run("Connected", func(t *testing.T) {
		db := MustOpenStore(t)
		record(t, db, eventRedirect("sess-1", "OPEN", at(1)), connectedRedirect("sess-1", "public-sandbox-1"))
		want := connectedRedirect("sess-1", "").GetConnected()
		wantProto(t, session(t, db).GetConnected(), want)
	})

	// The outcome can arrive before the events; events still file after it.
	t.Run("OutcomeFirst", func(t *testing.T) {
		db := MustOpenStore(t)
		record(t, db, exitRedirect("sess-1", "requires_credentials"), eventRedirect("sess-1", "EXIT", at(2)), eventRedirect("sess-1", "OPEN", at(1)))
		s := session(t, db)
		wantProto(t, s.GetExit(), exitRedirect("sess-1", "requires_credentials").GetExit())
		wantStrings(t, "events", eventNames(s), []string{"OPEN", "EXIT"})
	})

	t.Run("SameOutcomeAgain", func(t *testing.T) {
		db := MustOpenStore(t)
		record(t, db, connectedRedirect("sess-1", "public-1"), connectedRedirect("sess-1", "public-1"))
		if err := db.RecordRedirect(ctx, "link-2", "user-1", exitRedirect("sess-2", "x")); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordRedirect(ctx, "link-2", "user-1", exitRedirect("sess-2", "x")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrConflictOutcome", func(t *testing.T) {
		for _, tt := range []struct {
			name          string
			first, second *linkdv1.WebviewRedirect
		}{
			{"ConnectedThenExit", connectedRedirect("sess-1", "public-1"), exitRedirect("sess-1", "requires_credentials")},
			{"ExitThenConnected", exitRedirect("sess-1", "requires_credentials"), connectedRedirect("sess-1", "public-1")},
			{"TwoExits", exitRedirect("sess-1", "requires_credentials"), exitRedirect("sess-1", "institution_not_found")},
			{"TwoConnected", connectedRedirect("sess-1", "public-1"), func() *linkdv1.WebviewRedirect {
				r := connectedRedirect("sess-1", "public-1")
				r.GetConnected().InstitutionId = "ins_4"
				return r
			}()},
		} {
			t.Run(tt.name, func(t *testing.T) {
				db := MustOpenStore(t)
				record(t, db, tt.first)
				before := session(t, db)
				wantCode(t, db.RecordRedirect(ctx, "link-1", "user-1", tt.second), linkd.ECONFLICT)
				wantProto(t, session(t, db), before)
			})
		}
	})

	t.Run("ErrConflictBinding", func(t *testing.T) {
		db := MustOpenStore(t)
		record(t, db, eventRedirect("sess-1", "OPEN", at(1)))
		wantCode(t, db.RecordRedirect(ctx, "link-2", "user-1", eventRedirect("sess-1", "HANDOFF", at(2))), linkd.ECONFLICT)
		wantCode(t, db.RecordRedirect(ctx, "link-1", "user-2", eventRedirect("sess-1", "HANDOFF", at(2))), linkd.ECONFLICT)
		wantCode(t, db.RecordRedirect(ctx, "link-2", "user-1", connectedRedirect("sess-1", "public-1")), linkd.ECONFLICT)
		wantStrings(t, "events", eventNames(session(t, db)), []string{"OPEN"})
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		db := MustOpenStore(t)
		for _, tt := range []struct {
			name     string
			token    string
			redirect *linkdv1.WebviewRedirect
			field    string
		}{
			{"NilRedirect", "link-1", nil, "link_session_id"},
			{"NoResult", "link-1", &linkdv1.WebviewRedirect{}, "link_session_id"},
			{"EventNoSessionID", "link-1", eventRedirect("", "OPEN", at(1)), "link_session_id"},
			{"ConnectedNoSessionID", "link-1", connectedRedirect("", "public-1"), "link_session_id"},
			{"ExitNoSessionID", "link-1", exitRedirect("", "x"), "link_session_id"},
			{"NilEvent", "link-1", &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{}}, "link_session_id"},
			{"NoLinkToken", "", eventRedirect("sess-1", "OPEN", at(1)), "link_token"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantField(t, db.RecordRedirect(ctx, tt.token, "user-1", tt.redirect), tt.field)
			})
		}
		_, err := db.GetLinkSession(ctx, "sess-1")
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

func TestDB_GetLinkSession(t *testing.T) {
	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenStore(t)
		_, err := db.GetLinkSession(context.Background(), "sess-nope")
		wantCode(t, err, linkd.ENOTFOUND)
	})
}

// Everything survives a close and reopen, and the access token unseals.
func TestDB_Reopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	keys := MustParseKeys(t, "k1:"+key1)
	db := MustOpenStoreAt(t, path, keys)
	lt := &storagev1.StoredLinkToken{LinkToken: "link-1", ClientUserId: "user-1", CreatedAt: at(0)}
	if err := db.PutLinkToken(ctx, lt); err != nil {
		t.Fatal(err)
	}
	record := []*linkdv1.WebviewRedirect{eventRedirect("sess-1", "OPEN", at(1)), connectedRedirect("sess-1", "public-1")}
	for _, r := range record {
		if err := db.RecordRedirect(ctx, "link-1", "user-1", r); err != nil {
			t.Fatal(err)
		}
	}
	item := newItem("item-1", "user-1")
	item.LinkSessionId = "sess-1"
	if err := db.PutItem(ctx, item, accessToken("item-1"), "public-1"); err != nil {
		t.Fatal(err)
	}
	wantSession, err := db.GetLinkSession(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	wantItem, err := db.GetItem(ctx, "item-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = MustOpenStoreAt(t, path, keys)
	gotLT, err := db.GetLinkToken(ctx, "link-1")
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, gotLT, lt)
	gotSession, err := db.GetLinkSession(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, gotSession, wantSession)
	gotItems, err := db.ListItems(ctx, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(gotItems) != 1 {
		t.Fatalf("ListItems = %d items, want 1", len(gotItems))
	}
	wantProto(t, gotItems[0], wantItem)
	byPublic, err := db.ItemForPublicToken(ctx, "public-1")
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, byPublic, wantItem)
	tok, err := db.AccessToken(ctx, "item-1")
	if err != nil {
		t.Fatal(err)
	}
	if tok != accessToken("item-1") {
		t.Fatal("access token does not round-trip a reopen")
	}
}

// The file holds no access token and no public token, nor any 12-byte
// piece of one.
func TestDB_SecretsNotInFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	db := MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1))
	var secrets []string
	for i := range 20 {
		id := fmt.Sprintf("item-%02d", i)
		sid := fmt.Sprintf("sess-%02d", i)
		public := fmt.Sprintf("public-sandbox-0b7e5a9c-%02d-4f1e-8d2a-6c3b9e7f1a5d", i)
		token := accessToken(id)
		secrets = append(secrets, public, token.Reveal())
		if err := db.RecordRedirect(ctx, "link-1", "user-1", connectedRedirect(sid, public)); err != nil {
			t.Fatal(err)
		}
		item := newItem(id, "user-1")
		item.LinkSessionId = sid
		if err := db.PutItem(ctx, item, token, public); err != nil {
			t.Fatal(err)
		}
	}
	// Deleting leaves freed pages behind; they must be clean too.
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

// Writers in parallel all land, each in its own transaction.
func TestDB_Concurrent(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			id := fmt.Sprintf("item-%02d", i)
			if err := db.PutItem(ctx, newItem(id, "user-1"), accessToken(id), "public-"+id); err != nil {
				t.Error(err)
			}
			if err := db.RecordRedirect(ctx, "link-1", "user-1", eventRedirect("sess-1", id, at(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	items, err := db.ListItems(ctx, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 40 {
		t.Fatalf("ListItems = %d items, want 40", len(items))
	}
	s, err := db.GetLinkSession(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range s.GetEvents() {
		if want := fmt.Sprintf("item-%02d", i); e.GetEventName() != want {
			t.Fatalf("event %d = %q, want %q", i, e.GetEventName(), want)
		}
	}
}

func TestDB_SetItemStatus(t *testing.T) {
	ctx := context.Background()
	const loginRequired = linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED

	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
			t.Fatal(err)
		}
		set, err := db.SetItemStatus(ctx, "item-1", loginRequired, "ITEM_LOGIN_REQUIRED")
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.GetItem(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, set)
		if got.GetStatus() != loginRequired || got.GetErrorCode() != "ITEM_LOGIN_REQUIRED" || got.GetStatusChangedAt() == nil {
			t.Errorf("item = %v", got)
		}
		// The same report again keeps the time of the change.
		again, err := db.SetItemStatus(ctx, "item-1", loginRequired, "ITEM_LOGIN_REQUIRED")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, again, got)
		// The user index is untouched: the Item is listed once.
		if items, err := db.ListItems(ctx, "user-1"); err != nil || len(items) != 1 || items[0].GetStatus() != loginRequired {
			t.Errorf("ListItems = %v, %v", items, err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := MustOpenStore(t).SetItemStatus(ctx, "nope", loginRequired, "")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		_, err := MustOpenStore(t).SetItemStatus(ctx, "nope", linkdv1.ItemStatus_ITEM_STATUS_UNSPECIFIED, "")
		wantField(t, err, "status")
	})
}

func TestDB_ItemsAtInstitution(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	for i, id := range []string{"item-b", "item-a", "item-other"} {
		item := newItem(id, "user-"+id)
		item.CreatedAt = at(10 - i)
		if id == "item-other" {
			item.InstitutionId = "ins_4"
		}
		if err := db.PutItem(ctx, item, accessToken(id), ""); err != nil {
			t.Fatal(err)
		}
	}
	items, err := db.ItemsAtInstitution(ctx, "ins_3")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.GetItemId())
	}
	wantStrings(t, "items at ins_3", ids, []string{"item-a", "item-b"})
	if none, err := db.ItemsAtInstitution(ctx, "ins_0"); err != nil || len(none) != 0 {
		t.Errorf("ItemsAtInstitution(ins_0) = %v, %v", none, err)
	}
}

func TestDB_LinkSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	record := func(sessionID string, ts *timestamppb.Timestamp) {
		t.Helper()
		if err := db.RecordRedirect(ctx, "link-sandbox-1", "user-1", eventRedirect(sessionID, "OPEN", ts)); err != nil {
			t.Fatal(err)
		}
	}
	record("in", at(50))
	record("in", at(5)) // an earlier event arriving late moves the start
	record("late", at(100))
	record("untimed", nil) // starts when first seen: the store's clock, near clockStart
	got, err := db.LinkSessions(ctx, at(0).AsTime(), at(100).AsTime())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range got {
		ids = append(ids, s.GetLinkSessionId())
	}
	slices.Sort(ids)
	wantStrings(t, "sessions in [0s, 100s)", ids, []string{"in", "untimed"})
}

func TestDB_Prune(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	// The store's clock moves a second per call: old is last seen at 0s,
	// recent at 1s.
	for _, id := range []string{"old", "recent"} {
		if err := db.RecordRedirect(ctx, "link-sandbox-1", "user-1", eventRedirect(id, "OPEN", at(500))); err != nil {
			t.Fatal(err)
		}
	}
	for i, received := range []*timestamppb.Timestamp{at(-10), at(10)} {
		w := &storagev1.StoredWebhook{WebhookType: "ITEM", WebhookCode: "ERROR", ReceivedAt: received, Body: []byte{byte(i)}}
		if _, err := db.RecordWebhook(ctx, w, linkdv1.ItemStatus_ITEM_STATUS_UNSPECIFIED); err != nil {
			t.Fatal(err)
		}
	}
	sessions, webhooks, err := db.Prune(ctx, at(1).AsTime())
	if err != nil || sessions != 1 || webhooks != 1 {
		t.Fatalf("Prune = %d sessions, %d webhooks, %v; want 1, 1", sessions, webhooks, err)
	}
	_, err = db.GetLinkSession(ctx, "old")
	wantCode(t, err, linkd.ENOTFOUND)
	if _, err := db.GetLinkSession(ctx, "recent"); err != nil {
		t.Errorf("recent session: %v", err)
	}
	if hooks, err := db.ListWebhooks(ctx); err != nil || len(hooks) != 1 || !hooks[0].GetReceivedAt().AsTime().Equal(at(10).AsTime()) {
		t.Errorf("webhooks left = %v, %v; want the one received at 10s", hooks, err)
	}
}
