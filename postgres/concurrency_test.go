package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/postgres"
)

// TestDB_UpdateItem_Contended: two handles (replicas), 16 goroutines each,
// every one adding its own account to one Item. A lost update would drop
// an account. Under SERIALIZABLE (CockroachDB's only level) the row lock
// conflicts fail with 40001 and the whole transaction runs again.
func TestDB_UpdateItem_Contended(t *testing.T) {
	for _, iso := range []string{"read committed", "serializable"} {
		t.Run(strings.ReplaceAll(iso, " ", "_"), func(t *testing.T) {
			testUpdateItemContended(t, iso)
		})
	}
}

func testUpdateItemContended(t *testing.T, isolation string) {
	ctx := context.Background()
	_, dsn, s := MustOpen(t)
	dsn += "&default_transaction_isolation=" + strings.ReplaceAll(isolation, " ", "%20")
	db, db2 := MustOpenDSN(t, dsn, s), MustOpenDSN(t, dsn, s)
	mustPut(t, db, newItem("item-1", "user-1", t0))
	var runs atomic.Int64
	var wg sync.WaitGroup
	for h, handle := range []*postgres.DB{db, db2} {
		for g := range 16 {
			wg.Go(func() {
				name := fmt.Sprintf("acct-%d-%d", h, g)
				_, err := handle.UpdateItem(ctx, "item-1", func(it *linkdv1.Item) (bool, error) {
					runs.Add(1)
					it.Accounts = append(it.Accounts, &linkdv1.Account{Name: name})
					return true, nil
				})
				if err != nil {
					t.Errorf("UpdateItem %s: %v", name, err)
				}
			})
		}
	}
	wg.Wait()
	item, err := db.GetItem(ctx, "item-1")
	must(t, err)
	seen := map[string]bool{}
	for _, a := range item.GetAccounts() {
		seen[a.GetName()] = true
	}
	if len(item.GetAccounts()) != 32 || len(seen) != 32 {
		t.Fatalf("%d accounts (%d distinct), want 32: an update was lost or doubled", len(item.GetAccounts()), len(seen))
	}
	t.Logf("%s: 32 updates, %d runs of the update function", isolation, runs.Load())
}

// TestDB_UpdateItem_Retry makes a serialization failure happen for sure:
// another transaction holds the Item's row while UpdateItem waits for it
// under SERIALIZABLE, then commits a change. Postgres then fails
// UpdateItem's transaction with 40001; only a retry makes the call
// succeed, and it must apply fn to the other transaction's result.
func TestDB_UpdateItem_Retry(t *testing.T) {
	ctx := context.Background()
	_, dsn, s := MustOpen(t)
	db := MustOpenDSN(t, dsn+"&default_transaction_isolation=serializable", s)
	mustPut(t, db, newItem("item-1", "user-1", t0))
	other := raw(t, dsn)
	tx, err := other.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	var rec []byte
	must(t, tx.QueryRow(ctx, `SELECT record FROM items WHERE item_id = 'item-1' FOR UPDATE`).Scan(&rec))
	item := new(linkdv1.Item)
	must(t, proto.Unmarshal(rec, item))
	item.InstitutionName = "Renamed elsewhere"
	rec, err = proto.Marshal(item)
	must(t, err)
	_, err = tx.Exec(ctx, `UPDATE items SET record = $1 WHERE item_id = 'item-1'`, rec)
	must(t, err)

	done := make(chan error, 1)
	var got *linkdv1.Item
	go func() {
		var err error
		got, err = db.UpdateItem(ctx, "item-1", linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_ERROR, "X", t0))
		done <- err
	}()
	// Wait until UpdateItem is blocked on the row lock.
	for waited := 0; ; waited++ {
		var n int
		must(t, other.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n))
		if n > 0 {
			break
		}
		if waited > 3000 { // 30 s: the shared machine can be slow
			t.Fatal("UpdateItem never waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, tx.Commit(ctx))
	must(t, <-done)
	if got.GetInstitutionName() != "Renamed elsewhere" || got.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_ERROR {
		t.Fatalf("UpdateItem = %v: want both changes", got)
	}
}

// TestDB_ClaimExchange_Race: two handles claim one public token at the
// same instant from many goroutines; exactly one claim is granted, and
// the others see who holds it.
func TestDB_ClaimExchange_Race(t *testing.T) {
	ctx := context.Background()
	db, dsn, s := MustOpen(t)
	db2 := MustOpenDSN(t, dsn, s)
	for round := range 5 {
		pub := fmt.Sprintf("public-sandbox-race-%d", round)
		var claimed atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for h, handle := range []*postgres.DB{db, db2} {
			for g := range 8 {
				wg.Go(func() {
					<-start
					owner := fmt.Sprintf("replica-%d-%d", h, g)
					res, err := handle.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: pub, ClientUserID: "user-1", Owner: owner, Now: t0, TTL: time.Minute})
					switch {
					case err != nil:
						t.Errorf("ClaimExchange: %v", err)
					case res.Claimed:
						claimed.Add(1)
						if res.Earlier {
							t.Errorf("first claim reports an earlier one")
						}
					case res.HeldBy == "" || !res.HeldUntil.Equal(t0.Add(time.Minute)):
						t.Errorf("not claimed and not held: %+v", res)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if n := claimed.Load(); n != 1 {
			t.Fatalf("round %d: %d claims granted, want exactly 1", round, n)
		}
	}
}

// TestDB_ClaimExchange follows one token through the claim's life across
// two handles.
func TestDB_ClaimExchange(t *testing.T) {
	ctx := context.Background()
	db, dsn, s := MustOpen(t)
	db2 := MustOpenDSN(t, dsn, s)
	claim := func(db *postgres.DB, owner, user string, now time.Time) (linkd.ClaimResult, error) {
		return db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: "public-1", ClientUserID: user, Owner: owner, Now: now, TTL: time.Minute})
	}
	res, err := claim(db, "a", "user-1", t0)
	must(t, err)
	if !res.Claimed || res.Earlier {
		t.Fatalf("first claim: %+v", res)
	}
	_, err = claim(db2, "b", "user-2", t0)
	wantCode(t, err, linkd.ECONFLICT)
	res, err = claim(db2, "b", "user-1", t0.Add(30*time.Second))
	must(t, err)
	if res.Claimed || res.HeldBy != "a" {
		t.Fatalf("claim while held: %+v", res)
	}
	must(t, db.RenewExchangeClaim(ctx, "public-1", "a", t0.Add(50*time.Second), time.Minute))
	wantCode(t, db2.RenewExchangeClaim(ctx, "public-1", "b", t0, time.Minute), linkd.ECONFLICT)
	// a vanishes; its renewed lease ends at 110s and b takes over.
	res, err = claim(db2, "b", "user-1", t0.Add(110*time.Second))
	must(t, err)
	if !res.Claimed || !res.Earlier {
		t.Fatalf("takeover of an expired claim: %+v, want Claimed and Earlier", res)
	}
	wantCode(t, db.RenewExchangeClaim(ctx, "public-1", "a", t0.Add(111*time.Second), time.Minute), linkd.ECONFLICT)
	must(t, db.ReleaseExchangeClaim(ctx, "public-1", "a", false)) // not a's: left alone
	res, err = claim(db, "c", "user-1", t0.Add(120*time.Second))
	must(t, err)
	if res.HeldBy != "b" {
		t.Fatalf("a's release removed b's claim: %+v", res)
	}
	must(t, db2.ReleaseExchangeClaim(ctx, "public-1", "b", true))
	res, err = claim(db, "c", "user-1", t0.Add(121*time.Second))
	must(t, err)
	if !res.Claimed || !res.Earlier {
		t.Fatalf("claim after an unknown outcome: %+v, want Earlier", res)
	}
	n := newItem("item-1", "user-1", t0)
	n.PublicToken = "public-1"
	mustPut(t, db, n)
	wantCode(t, db.RenewExchangeClaim(ctx, "public-1", "c", t0.Add(122*time.Second), time.Minute), linkd.ECONFLICT)
	res, err = claim(db2, "d", "user-1", t0.Add(123*time.Second))
	must(t, err)
	if res.Claimed || res.Item.GetItemId() != "item-1" {
		t.Fatalf("claim of a spent token: %+v, want its Item", res)
	}
	_, err = claim(db2, "d", "user-2", t0.Add(123*time.Second))
	wantCode(t, err, linkd.ECONFLICT)

	// A release with a known outcome removes the mark: no Earlier.
	res, err = db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: "public-2", ClientUserID: "user-1", Owner: "a", Now: t0, TTL: time.Minute})
	must(t, err)
	must(t, db.ReleaseExchangeClaim(ctx, "public-2", "a", false))
	res, err = db2.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: "public-2", ClientUserID: "user-1", Owner: "b", Now: t0, TTL: time.Minute})
	must(t, err)
	if !res.Claimed || res.Earlier {
		t.Fatalf("claim after a known release: %+v", res)
	}
}

// TestDB_ResealAccessTokens: after a key rotation, two handles re-seal at
// once; every token is re-sealed exactly once and still opens.
func TestDB_ResealAccessTokens(t *testing.T) {
	ctx := context.Background()
	db, dsn, s := MustOpen(t)
	db2 := MustOpenDSN(t, dsn, s)
	for i := range 50 {
		mustPut(t, db, newItem(fmt.Sprintf("item-%02d", i), "user-1", t0))
	}
	// Both replicas restart with k2 current.
	rotated := mustSealer(t, "k1", "k2")
	db, db2 = MustOpenDSN(t, dsn, rotated), MustOpenDSN(t, dsn, rotated)
	var total atomic.Int64
	var wg sync.WaitGroup
	for _, handle := range []*postgres.DB{db, db2} {
		wg.Go(func() {
			for after := ""; ; {
				n, next, err := handle.ResealAccessTokens(ctx, after, 7)
				if err != nil {
					t.Errorf("ResealAccessTokens: %v", err)
					return
				}
				total.Add(int64(n))
				if next == "" {
					return
				}
				after = next
			}
		})
	}
	wg.Wait()
	if total.Load() != 50 {
		t.Fatalf("re-sealed %d, want 50", total.Load())
	}
	keys, err := db.SealedKeyIDs(ctx)
	must(t, err)
	if len(keys) != 1 || keys["k2"] != "item-00" {
		t.Fatalf("SealedKeyIDs = %v, want only k2", keys)
	}
	tok, err := db2.AccessToken(ctx, "item-33")
	must(t, err)
	if tok.Reveal() != "access-sandbox-item-33-secret" {
		t.Fatal("a re-sealed token does not open to itself")
	}
}
