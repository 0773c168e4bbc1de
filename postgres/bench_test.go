package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/postgres"
	"github.com/linkd/linkd/storetest"
)

// BenchmarkDB_LinkPath measures the store's part of linking an Item: the
// two commits of ClaimExchange (with the link) and then PutItem (claim removed, token
// sealed, use recorded, session updated, refresh queued), from 1, 16 and
// 64 goroutines sharing one handle of 16 connections. Each op is one whole
// link; the cluster fsyncs every commit.
func BenchmarkDB_LinkPath(b *testing.B) {
	for _, goroutines := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			ctx := context.Background()
			dsn := pgtest.MustStart(b)
			db, err := postgres.Open(ctx, dsn, postgres.Options{Sealer: mustSealer(b, "k1"), MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := range goroutines {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						id := fmt.Sprintf("item-%d-%d", g, i)
						user := "user-" + id // each link its own user's, as in linkd-load
						n := newItem(id, user, t0)
						n.RefreshAt = t0.Add(time.Hour)
						n.Session = linkd.MergeRedirect("link-1", user, event(n.Item.GetLinkSessionId(), "HANDOFF", t0), t0)
						// The claim carries the link (gate, search for pending
						// links), as linkd's connected redirects do.
						res, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: n.PublicToken, ClientUserID: user, Owner: "bench", Now: t0, TTL: time.Minute,
							Link: &linkd.PendingLink{InstitutionID: n.Item.GetInstitutionId(), Accounts: []*linkdv1.Account{{Name: "Plaid Checking", Mask: "0000"}}}})
						if err != nil || !res.Claimed {
							b.Errorf("ClaimExchange: %+v %v", res, err)
							return
						}
						if _, err := db.PutItem(ctx, n); err != nil {
							b.Errorf("PutItem: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// BenchmarkDB_ItemsAfter is the read side of one reconcile pass: walking
// 1,000 Items a page of 100 at a time (the cursor the last item_id, one
// primary-key range a page). ns/op is one whole walk. (1,000, not the
// bbolt benchmark's 5,000, so that make bench's 2000x stays short.)
func BenchmarkDB_ItemsAfter(b *testing.B) {
	const items, page = 1000, 100
	db, _, _ := MustOpen(b)
	storetest.BenchWalkItems(b, db, items, 16, page, func(i int64) linkd.NewItem {
		n := newItem(fmt.Sprintf("item-%05d", i), "user-1", t0)
		n.PublicToken = ""
		return n
	})
}
