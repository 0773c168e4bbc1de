// Package storetest is the conformance suite of linkd.Store: every backend
// runs it, so that every promise of the contract in linkd's store.go holds
// the same on bbolt and on Postgres. It tests the contract only, never a
// backend's internals, in the manner of testing/fstest.TestFS.
package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/seal"
)

// Backend is one fresh, empty backend under test, opened by the backend's
// OpenFunc.
type Backend struct {
	// Store is a handle on the backend, sealing with the Sealer the
	// OpenFunc was given.
	Store linkd.Store
	// Reopen closes Store and returns a new handle on the same records
	// sealing with sealer, as a restart with another keyring does.
	Reopen func(t *testing.T, sealer linkd.Sealer) linkd.Store
	// Raw returns every byte the backend keeps (a bbolt file, a dump of
	// the tables), so the suite can prove no secret is stored in plain;
	// nil skips that test.
	Raw func(t *testing.T) []byte
}

// OpenFunc opens a new, empty backend whose store seals with sealer. It
// registers the cleanup (closing the store, checking the backend) with t.
type OpenFunc func(t *testing.T, sealer linkd.Sealer) Backend

// SharedOpenFunc opens a new, empty backend and returns two handles on it,
// as two replicas have, both sealing with sealer.
type SharedOpenFunc func(t *testing.T, sealer linkd.Sealer) (a, b linkd.Store)

// Test master keys: fixed and printable, so that a failure reproduces and
// a leak is easy to search for.
var (
	key1 = []byte("storetest-master-key-number-one!")
	key2 = []byte("storetest-master-key-number-two!")
)

// keys returns the suite's keyring: k1 alone, or with k2 too, current.
func keys(t *testing.T, withK2 bool) seal.Keyring {
	t.Helper()
	s := "k1:" + base64.StdEncoding.EncodeToString(key1)
	if withK2 {
		s += ",k2:" + base64.StdEncoding.EncodeToString(key2)
	}
	k, err := seal.ParseMasterKeys(s, "")
	if err != nil {
		t.Fatalf("ParseMasterKeys: %v", err)
	}
	return k
}

// MustSealer returns the suite's Sealer: key k1, or k1 and k2 with k2
// current.
func MustSealer(t *testing.T, withK2 bool) linkd.Sealer {
	t.Helper()
	s, err := seal.New(keys(t, withK2))
	if err != nil {
		t.Fatalf("seal.New: %v", err)
	}
	return s
}

// t0 is the suite's time origin; at(n) is n seconds after it.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func ts(n int) *timestamppb.Timestamp { return timestamppb.New(at(n)) }

// newItem returns an Item of user at ins_3, created at(created).
func newItem(itemID, user string, created int) *linkdv1.Item {
	return &linkdv1.Item{
		ItemId:          itemID,
		ClientUserId:    user,
		InstitutionId:   "ins_3",
		InstitutionName: "Chase",
		Status:          linkdv1.ItemStatus_ITEM_STATUS_GOOD,
		CreatedAt:       ts(created),
		Accounts:        []*linkdv1.Account{{Id: "acc-" + itemID, Name: "Plaid Checking", Mask: "0000"}},
	}
}

// accessToken returns a distinct, realistic access token for an Item.
func accessToken(itemID string) linkd.AccessToken {
	return linkd.NewAccessToken("access-sandbox-5f3c9b2e-" + itemID + "-7a1d-4c6e-9f0b-2d8e4a6c1b3f")
}

// publicToken returns a distinct, realistic public token.
func publicToken(n string) string { return "public-sandbox-0b1c2d3e-" + n + "-4f5a-6b7c-8d9e0f1a2b3c" }

// event returns an event redirect of session at(n).
func event(sessionID, name string, n int) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
		EventName: name, LinkSessionId: sessionID, Timestamp: ts(n),
	}}}
}

// addEvent returns an update function adding one event, as the service
// does through linkd.MergeRedirect.
func addEvent(sessionID, name string, n int) func(*linkdv1.LinkSession) (bool, error) {
	return linkd.MergeRedirect("link-token-1", "user-1", event(sessionID, name, n), at(n))
}

// mustPutItem stores a new Item with its access token.
func mustPutItem(t *testing.T, s linkd.Store, n linkd.NewItem) *linkdv1.Item {
	t.Helper()
	if n.AccessToken.IsZero() {
		n.AccessToken = accessToken(n.Item.GetItemId())
	}
	item, err := s.PutItem(context.Background(), n)
	if err != nil {
		t.Fatalf("PutItem(%s): %v", n.Item.GetItemId(), err)
	}
	return item
}

// mustUpdateSession applies fn to a session.
func mustUpdateSession(t *testing.T, s linkd.Store, id string, fn func(*linkdv1.LinkSession) (bool, error)) *linkdv1.LinkSession {
	t.Helper()
	out, err := s.UpdateLinkSession(context.Background(), id, fn)
	if err != nil {
		t.Fatalf("UpdateLinkSession(%s): %v", id, err)
	}
	return out
}

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := linkd.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// wantField fails the test unless err is EINVALID naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	wantCode(t, err, linkd.EINVALID)
	var e *linkd.Error
	if !errors.As(err, &e) || e.Field != field {
		t.Fatalf("error = %v, want EINVALID naming %q", err, field)
	}
}

// wantProto fails the test when got and want differ.
func wantProto(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// itemIDs returns the ids of items, in order.
func itemIDs(items []*linkdv1.Item) []string {
	var ids []string
	for _, it := range items {
		ids = append(ids, it.GetItemId())
	}
	return ids
}

// sessionIDs returns the ids of sessions, in order.
func sessionIDs(ss []*linkdv1.LinkSession) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.GetLinkSessionId())
	}
	return ids
}

// containsAny reports the first of secrets found in raw.
func containsAny(raw []byte, secrets ...[]byte) ([]byte, bool) {
	for _, s := range secrets {
		if bytes.Contains(raw, s) {
			return s, true
		}
	}
	return nil, false
}

// noChange is an update function that changes the record it is given and
// reports no change: the store must keep the record as it was.
func noChange[M proto.Message](m M) (bool, error) {
	proto.Reset(m)
	return false, nil
}

// WalkItems walks every Item of s as the reconcile job does, a page of
// page at a time with the last item_id as the cursor, calling between
// (when not nil) after each page, and returns the item_ids seen in order.
// It fails tb when a read fails or a page is longer than page.
func WalkItems(tb testing.TB, s linkd.Store, page int, between func(after string)) []string {
	tb.Helper()
	var seen []string
	after := ""
	for {
		got, err := s.ItemsAfter(context.Background(), after, page)
		if err != nil {
			tb.Fatal(err)
		}
		if len(got) > page {
			tb.Fatalf("page of %d Items, limit %d", len(got), page)
		}
		if len(got) == 0 {
			return seen
		}
		for _, it := range got {
			seen = append(seen, it.GetItemId())
		}
		after = got[len(got)-1].GetItemId()
		if between != nil {
			between(after)
		}
	}
}

// BenchWalkItems stores items Items made by newItem (i from 1), from
// writers concurrent callers so that group commit keeps the setup short,
// then times walking them page at a time (WalkItems): ns/op is one whole
// walk, the read side of a reconcile pass.
func BenchWalkItems(b *testing.B, s linkd.Store, items, writers, page int, newItem func(i int64) linkd.NewItem) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(items); i = next.Add(1) {
				if _, err := s.PutItem(ctx, newItem(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		if n := len(WalkItems(b, s, page, nil)); n != items {
			b.Fatalf("walk saw %d Items, want %d", n, items)
		}
	}
}
