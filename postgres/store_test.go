package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/postgres"
)

// The contract's behaviour is tested by storetest (storetest_test.go);
// the tests here are about how this backend keeps it.

func newItem(id, user string, created time.Time) linkd.NewItem {
	return linkd.NewItem{
		Item: &linkdv1.Item{
			ItemId: id, ClientUserId: user, InstitutionId: "ins_1", InstitutionName: "Bank",
			LinkSessionId: "ls-" + id, CreatedAt: timestamppb.New(created),
		},
		AccessToken: linkd.NewAccessToken("access-sandbox-" + id + "-secret"),
		PublicToken: "public-sandbox-" + id + "-secret",
	}
}

func mustPut(tb testing.TB, db *postgres.DB, n linkd.NewItem) *linkdv1.Item {
	tb.Helper()
	item, err := db.PutItem(context.Background(), n)
	if err != nil {
		tb.Fatalf("PutItem: %v", err)
	}
	return item
}

// TestDB_DeleteItem_Cascade: the rows that hang off an Item go with it
// (ON DELETE CASCADE), seen from behind the store's back.
func TestDB_DeleteItem_Cascade(t *testing.T) {
	ctx := context.Background()
	db, dsn, _ := MustOpen(t)
	n := newItem("item-1", "user-1", t0)
	n.RefreshAt = t0
	mustPut(t, db, n)
	must(t, db.DeleteItem(ctx, "item-1"))
	wantCode(t, db.DeleteItem(ctx, "item-1"), linkd.ENOTFOUND)
	_, err := db.AccessToken(ctx, "item-1")
	wantCode(t, err, linkd.ENOTFOUND)
	_, err = db.ItemForPublicToken(ctx, n.PublicToken)
	wantCode(t, err, linkd.ENOTFOUND)
	c := raw(t, dsn)
	for _, table := range []string{"access_tokens", "public_token_uses", "item_refreshes"} {
		var count int
		must(t, c.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&count))
		if count != 0 {
			t.Errorf("%s keeps %d rows of a deleted Item", table, count)
		}
	}
	// The token can be spent again on a new Item.
	mustPut(t, db, n)
}

func event(sid, name string, at time.Time) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
		LinkSessionId: sid, EventName: name, Timestamp: timestamppb.New(at),
	}}}
}

// TestDB_LinkSessions_OpenWindow: a zero since (from the beginning) and a
// far until are clamped to what the bigint columns hold, not wrapped.
func TestDB_LinkSessions_OpenWindow(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	for i, start := range []time.Time{time.Unix(0, 0).Add(-time.Hour), t0} {
		sid := "ls-" + string(rune('a'+i))
		_, err := db.UpdateLinkSession(ctx, sid, linkd.MergeRedirect("link-1", "user-1", event(sid, "OPEN", start), t0))
		must(t, err)
	}
	got, next, err := db.LinkSessions(ctx, time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "", 10)
	must(t, err)
	if len(got) != 2 || next != "" {
		t.Fatalf("LinkSessions(zero, 9999) = %d sessions, next %q; want both", len(got), next)
	}
}

// TestDB_Import_UnindexableInstitutionID: an Item whose institution_id
// Postgres cannot index (a NUL byte, over 1 KiB) — kept by a bbolt file
// from before linkd refused such ids — is imported and then updated like
// any other, only missing from the institution index, rather than aborting
// the whole move.
func TestDB_Import_UnindexableInstitutionID(t *testing.T) {
	ctx := context.Background()
	db, _, sealer := MustOpen(t)
	for i, id := range []string{"ins\x003", strings.Repeat("i", 2000)} {
		itemID := fmt.Sprintf("item-%d", i)
		sealed, err := sealer.SealAccessToken(itemID, linkd.NewAccessToken("access-sandbox-"+itemID))
		must(t, err)
		item := &linkdv1.Item{ItemId: itemID, ClientUserId: "user-1", InstitutionId: id, CreatedAt: timestamppb.New(t0)}
		must(t, db.Import(ctx, []linkd.Record{{Item: &linkd.ItemRecord{Item: item, Sealed: sealed}}}))
		got, err := db.UpdateItem(ctx, itemID, linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", t0))
		if err != nil || got.GetInstitutionId() != id || got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
			t.Fatalf("UpdateItem of an imported Item with institution_id %.10q = %v, %v", id, got, err)
		}
		if items, err := db.ItemsAtInstitution(ctx, id); err != nil || len(items) != 0 {
			t.Errorf("ItemsAtInstitution(%.10q) = %v, %v; want none", id, items, err)
		}
	}
}
