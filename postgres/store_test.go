package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/postgres"
)

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

func TestDB_PutItem(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		db, _, _ := MustOpen(t)
		n := newItem("item-1", "user-1", t0)
		n.RefreshAt = t0.Add(time.Minute)
		n.Session = func(s *linkdv1.LinkSession) (bool, error) {
			s.LinkToken, s.ClientUserId = "link-1", "user-1"
			return true, nil
		}
		mustPut(t, db, n)
		got, err := db.GetItem(ctx, "item-1")
		must(t, err)
		if !proto.Equal(got, n.Item) {
			t.Fatalf("GetItem = %v, want %v", got, n.Item)
		}
		tok, err := db.AccessToken(ctx, "item-1")
		must(t, err)
		if tok.Reveal() != n.AccessToken.Reveal() {
			t.Fatal("AccessToken does not return the token put")
		}
		byPub, err := db.ItemForPublicToken(ctx, n.PublicToken)
		must(t, err)
		if byPub.GetItemId() != "item-1" {
			t.Fatalf("ItemForPublicToken = %v", byPub)
		}
		s, err := db.GetLinkSession(ctx, "ls-item-1")
		must(t, err)
		if s.GetItemId() != "item-1" || s.GetLinkToken() != "link-1" {
			t.Fatalf("session %v: want item_id and the Session function's changes", s)
		}
		due, err := db.DueItemRefreshes(ctx, t0.Add(time.Minute), 10)
		must(t, err)
		if len(due) != 1 || due[0] != "item-1" {
			t.Fatalf("DueItemRefreshes = %v", due)
		}
	})
	t.Run("CreatedAtFilled", func(t *testing.T) {
		db, _, _ := MustOpen(t)
		n := newItem("item-1", "user-1", t0)
		n.Item.CreatedAt = nil
		item := mustPut(t, db, n)
		if !item.GetCreatedAt().AsTime().Equal(t0) {
			t.Fatalf("created_at %v, want the store's clock %v", item.GetCreatedAt().AsTime(), t0)
		}
	})
	t.Run("ErrConflict", func(t *testing.T) {
		db, _, _ := MustOpen(t)
		mustPut(t, db, newItem("item-1", "user-1", t0))
		_, err := db.PutItem(ctx, newItem("item-1", "user-1", t0))
		wantCode(t, err, linkd.ECONFLICT)
		n := newItem("item-2", "user-1", t0)
		n.PublicToken = newItem("item-1", "", t0).PublicToken
		_, err = db.PutItem(ctx, n)
		wantCode(t, err, linkd.ECONFLICT)
		_, err = db.GetItem(ctx, "item-2")
		wantCode(t, err, linkd.ENOTFOUND) // nothing of a refused PutItem stays
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		db, _, _ := MustOpen(t)
		n := newItem("", "user-1", t0)
		_, err := db.PutItem(ctx, n)
		wantCode(t, err, linkd.EINVALID)
		n = newItem("item-1", "user-1", t0)
		n.AccessToken = linkd.AccessToken{}
		_, err = db.PutItem(ctx, n)
		wantCode(t, err, linkd.EINVALID)
	})
}

func TestDB_ListItems(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	mustPut(t, db, newItem("b", "user-1", t0.Add(time.Second)))
	mustPut(t, db, newItem("a", "user-1", t0.Add(time.Second)))
	mustPut(t, db, newItem("c", "user-1", t0))
	mustPut(t, db, newItem("d", "user-2", t0))
	items, err := db.ListItems(ctx, "user-1")
	must(t, err)
	if got := ids(items); fmt.Sprint(got) != "[c a b]" {
		t.Fatalf("ListItems = %v, want oldest first, then by id", got)
	}
	items, err = db.ItemsAtInstitution(ctx, "ins_1")
	must(t, err)
	if got := ids(items); fmt.Sprint(got) != "[c d a b]" {
		t.Fatalf("ItemsAtInstitution = %v", got)
	}
	items, err = db.ListItems(ctx, "nobody")
	must(t, err)
	if len(items) != 0 {
		t.Fatalf("ListItems(nobody) = %v", items)
	}
}

func ids(items []*linkdv1.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.GetItemId())
	}
	return out
}

func TestDB_DeleteItem(t *testing.T) {
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

func TestDB_UpdateItem(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	mustPut(t, db, newItem("item-1", "user-1", t0))
	got, err := db.UpdateItem(ctx, "item-1", linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", t0))
	must(t, err)
	if got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Fatalf("UpdateItem returned %v", got)
	}
	got, err = db.UpdateItem(ctx, "item-1", linkd.SetItemDetails("ins_2", "", nil))
	must(t, err)
	items, err := db.ItemsAtInstitution(ctx, "ins_2")
	must(t, err)
	if len(items) != 1 || !proto.Equal(items[0], got) {
		t.Fatalf("the institution index does not follow UpdateItem: %v", items)
	}
	boom := fmt.Errorf("boom")
	_, err = db.UpdateItem(ctx, "item-1", func(it *linkdv1.Item) (bool, error) { it.InstitutionId = "x"; return true, boom })
	if err != boom {
		t.Fatalf("UpdateItem returned %v, want fn's error unchanged", err)
	}
	_, err = db.UpdateItem(ctx, "nope", linkd.SetItemDetails("x", "", nil))
	wantCode(t, err, linkd.ENOTFOUND)

	n := newItem("item-2", "user-1", t0)
	n.RefreshAt = t0
	mustPut(t, db, n)
	must(t, db.DeferItemRefresh(ctx, "item-2", t0.Add(time.Hour)))
	if due, _ := db.DueItemRefreshes(ctx, t0, 10); len(due) != 0 {
		t.Fatalf("deferred refresh is due: %v", due)
	}
	_, err = db.UpdateRefreshedItem(ctx, "item-2", linkd.SetItemDetails("", "New name", nil))
	must(t, err)
	if due, _ := db.DueItemRefreshes(ctx, t0.Add(2*time.Hour), 10); len(due) != 0 {
		t.Fatalf("refreshed Item is still queued: %v", due)
	}
	must(t, db.DeferItemRefresh(ctx, "item-2", t0)) // none queued: not an error
}

func TestDB_LinkTokens(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	tok := func(s string, exp time.Time) *storagev1.StoredLinkToken {
		return &storagev1.StoredLinkToken{LinkToken: s, ClientUserId: "user-1", Expiration: timestamppb.New(exp)}
	}
	must(t, db.PutLinkToken(ctx, tok("link-dead", t0)))
	wantCode(t, db.PutLinkToken(ctx, tok("link-dead", t0)), linkd.ECONFLICT)
	got, err := db.GetLinkToken(ctx, "link-dead")
	must(t, err)
	if got.GetCreatedAt() == nil {
		t.Fatal("created_at not filled in")
	}
	_, err = db.LinkTokenRenewal(ctx, "link-dead", t0)
	wantCode(t, err, linkd.ENOTFOUND)
	r, err := db.RenewLinkToken(ctx, "link-dead", tok("link-fresh-1", t0.Add(time.Hour)), t0)
	must(t, err)
	if r.GetLinkToken() != "link-fresh-1" {
		t.Fatalf("renewal %v", r)
	}
	r, err = db.RenewLinkToken(ctx, "link-dead", tok("link-fresh-2", t0.Add(2*time.Hour)), t0)
	must(t, err)
	if r.GetLinkToken() != "link-fresh-1" {
		t.Fatalf("second renewal replaced a live one: %v", r)
	}
	// Once the first renewal has expired, a new one stands.
	r, err = db.RenewLinkToken(ctx, "link-dead", tok("link-fresh-3", t0.Add(3*time.Hour)), t0.Add(time.Hour))
	must(t, err)
	if r.GetLinkToken() != "link-fresh-3" {
		t.Fatalf("renewal after expiry = %v", r)
	}
	r, err = db.LinkTokenRenewal(ctx, "link-dead", t0.Add(time.Hour))
	must(t, err)
	if r.GetLinkToken() != "link-fresh-3" {
		t.Fatalf("LinkTokenRenewal = %v", r)
	}
	_, err = db.RenewLinkToken(ctx, "link-unknown", tok("link-fresh-4", t0), t0)
	wantCode(t, err, linkd.ENOTFOUND)

	res, err := db.Prune(ctx, linkd.PruneCutoffs{LinkTokens: t0.Add(90 * time.Minute)})
	must(t, err)
	if res.LinkTokens != 2 { // link-dead and link-fresh-1
		t.Fatalf("Prune = %+v, want 2 link tokens", res)
	}
	_, err = db.LinkTokenRenewal(ctx, "link-dead", t0)
	wantCode(t, err, linkd.ENOTFOUND)
}

func event(sid, name string, at time.Time) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
		LinkSessionId: sid, EventName: name, Timestamp: timestamppb.New(at),
	}}}
}

func TestDB_UpdateLinkSession(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	t.Run("NoChangeNotStored", func(t *testing.T) {
		s, err := db.UpdateLinkSession(ctx, "ls-1", func(*linkdv1.LinkSession) (bool, error) { return false, nil })
		must(t, err)
		if s.GetLinkSessionId() != "ls-1" {
			t.Fatalf("session %v", s)
		}
		_, err = db.GetLinkSession(ctx, "ls-1")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("FnError", func(t *testing.T) {
		boom := fmt.Errorf("boom")
		_, err := db.UpdateLinkSession(ctx, "ls-2", func(s *linkdv1.LinkSession) (bool, error) { s.LinkToken = "x"; return true, boom })
		if err != boom {
			t.Fatalf("err %v, want fn's error unchanged", err)
		}
		_, err = db.GetLinkSession(ctx, "ls-2")
		wantCode(t, err, linkd.ENOTFOUND)
	})
	t.Run("Merge", func(t *testing.T) {
		_, err := db.UpdateLinkSession(ctx, "ls-3", linkd.MergeRedirect("link-1", "user-1", event("ls-3", "OPEN", t0), t0))
		must(t, err)
		_, err = db.UpdateLinkSession(ctx, "ls-3", linkd.MergeRedirect("link-2", "user-1", event("ls-3", "OPEN", t0), t0))
		wantCode(t, err, linkd.ECONFLICT)
		s, err := db.GetLinkSession(ctx, "ls-3")
		must(t, err)
		if len(s.GetEvents()) != 1 || s.GetLinkToken() != "link-1" {
			t.Fatalf("session %v", s)
		}
	})
}

func TestDB_LinkSessions(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	for i := range 25 {
		sid := fmt.Sprintf("ls-%02d", i)
		_, err := db.UpdateLinkSession(ctx, sid, linkd.MergeRedirect("link-1", "user-1", event(sid, "OPEN", t0.Add(time.Duration(i/2)*time.Second)), t0))
		must(t, err)
	}
	var got []string
	token := ""
	pages := 0
	for {
		page, next, err := db.LinkSessions(ctx, t0.Add(time.Second), t0.Add(11*time.Second), token, 4)
		must(t, err)
		pages++
		for _, s := range page {
			got = append(got, s.GetLinkSessionId())
		}
		if next == "" {
			break
		}
		token = next
	}
	// Starts 1s..10s: sessions 02..21, in start order then id.
	want := []string{}
	for i := 2; i <= 21; i++ {
		want = append(want, fmt.Sprintf("ls-%02d", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 5 {
		t.Fatalf("pages %d: %v, want %v", pages, got, want)
	}
	_, _, err := db.LinkSessions(ctx, t0, t0.Add(time.Hour), "not a token!", 4)
	wantCode(t, err, linkd.EINVALID)

	res, err := db.Prune(ctx, linkd.PruneCutoffs{Sessions: t0.Add(5 * time.Second)})
	must(t, err)
	if res.Sessions != 10 {
		t.Fatalf("Prune = %+v, want 10 sessions", res)
	}
}

func TestDB_RecordWebhook(t *testing.T) {
	ctx := context.Background()
	db, _, _ := MustOpen(t)
	mustPut(t, db, newItem("item-1", "user-1", t0))
	w := &storagev1.StoredWebhook{WebhookType: "ITEM", WebhookCode: "ERROR", ItemId: "item-1", ErrorCode: "ITEM_LOGIN_REQUIRED"}
	fn := linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", t0)
	item, err := db.RecordWebhook(ctx, w, "d1", fn)
	must(t, err)
	if item.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Fatalf("RecordWebhook item = %v", item)
	}
	_, err = db.RecordWebhook(ctx, w, "d1", fn)
	wantCode(t, err, linkd.ECONFLICT)
	item, err = db.RecordWebhook(ctx, w, "d2", fn) // no change
	must(t, err)
	if item != nil {
		t.Fatalf("unchanged Item returned: %v", item)
	}
	other := &storagev1.StoredWebhook{WebhookType: "ITEM", WebhookCode: "ERROR", ItemId: "gone"}
	item, err = db.RecordWebhook(ctx, other, "d3", fn)
	must(t, err)
	if item != nil {
		t.Fatalf("webhook for a missing Item returned %v", item)
	}
	for i := range 7 {
		w := &storagev1.StoredWebhook{WebhookType: "TRANSACTIONS", ReceivedAt: timestamppb.New(t0.Add(time.Duration(i) * time.Second))}
		_, err := db.RecordWebhook(ctx, w, fmt.Sprintf("e%d", i), nil)
		must(t, err)
	}
	var all []*storagev1.StoredWebhook
	token := ""
	for {
		page, next, err := db.ListWebhooks(ctx, token, 3)
		must(t, err)
		all = append(all, page...)
		if next == "" {
			break
		}
		token = next
	}
	if len(all) != 10 {
		t.Fatalf("ListWebhooks listed %d, want 10", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].GetReceivedAt().AsTime().Before(all[i-1].GetReceivedAt().AsTime()) {
			t.Fatalf("webhooks out of order at %d", i)
		}
	}
	res, err := db.Prune(ctx, linkd.PruneCutoffs{Webhooks: t0.Add(3 * time.Second), Deliveries: t0.Add(time.Nanosecond)})
	must(t, err)
	if res.Webhooks != 6 || res.Deliveries != 10 {
		t.Fatalf("Prune = %+v, want 6 webhooks (3 at t0, e0..e2) and 10 deliveries", res)
	}
	// With its delivery id pruned, a delivery is new again.
	_, err = db.RecordWebhook(ctx, w, "d1", fn)
	must(t, err)
}

func TestDB_TryLease(t *testing.T) {
	ctx := context.Background()
	db, dsn, s := MustOpen(t)
	db2 := MustOpenDSN(t, dsn, s)
	held := func(db *postgres.DB, owner string, now time.Time) bool {
		ok, err := db.TryLease(ctx, "prune", owner, now, time.Minute)
		must(t, err)
		return ok
	}
	if !held(db, "a", t0) || held(db2, "b", t0.Add(30*time.Second)) || !held(db, "a", t0.Add(50*time.Second)) {
		t.Fatal("a lease is not held by its owner alone while live")
	}
	if held(db2, "b", t0.Add(110*time.Second-time.Nanosecond)) || !held(db2, "b", t0.Add(110*time.Second)) || held(db, "a", t0.Add(112*time.Second)) {
		t.Fatal("an expired lease is not taken over")
	}
}
