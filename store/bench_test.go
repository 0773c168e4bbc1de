package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/store"
	"github.com/linkd/linkd/storetest"
)

// Every write is one fsynced bbolt transaction, so these measure the disk's
// fsync more than the code.

// oldBatchDelay is the MaxBatchDelay the previous release gave bbolt's
// Batch.
const oldBatchDelay = 500 * time.Microsecond

// openCounting opens a store in a temporary directory that counts its
// commits and the writes they carry; the benchmark's end closes it.
func openCounting(b *testing.B) (db *store.DB, writes, commits *atomic.Int64) {
	writes, commits = new(atomic.Int64), new(atomic.Int64)
	db, err := store.Open(filepath.Join(b.TempDir(), "linkd.db"), store.Options{
		Sealer: MustSealer(b, "k1:"+key1),
		OnCommit: func(n int, _ time.Duration) {
			writes.Add(int64(n))
			commits.Add(1)
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, writes, commits
}

// BenchmarkDB_PutItem_Commit compares bbolt's Batch (the previous release)
// with the committer, for a lone writer and 16 and 64 concurrent ones, each
// storing Items as fast as they are acknowledged. ns/op is the cost per
// Item across all writers; ms/ack is what one writer waits; writes/commit
// is the committer's mean batch.
func BenchmarkDB_PutItem_Commit(b *testing.B) {
	for _, mode := range []string{"batch", "committer"} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				db, writes, commits := openCounting(b)
				if mode == "batch" {
					store.UseBoltBatch(db, oldBatchDelay)
				}
				ctx := context.Background()
				var n, waited atomic.Int64
				work := make(chan struct{})
				var wg sync.WaitGroup
				b.ResetTimer()
				for range writers {
					wg.Go(func() {
						for range work {
							i := n.Add(1)
							id := "item-" + strconv.FormatInt(i, 10)
							start := time.Now()
							item := newItem(id, "user-"+strconv.FormatInt(i%100, 10))
							if _, err := db.PutItem(ctx, linkd.NewItem{Item: item, AccessToken: accessToken(id), PublicToken: "public-" + id}); err != nil {
								b.Error(err)
							}
							waited.Add(int64(time.Since(start)))
						}
					})
				}
				for b.Loop() {
					work <- struct{}{}
				}
				close(work)
				wg.Wait()
				b.ReportMetric(float64(waited.Load())/float64(n.Load())/1e6, "ms/ack")
				if c := commits.Load(); c > 0 {
					b.ReportMetric(float64(writes.Load())/float64(c), "writes/commit")
				}
			})
		}
	}
}

// BenchmarkDB_ConnectedLink is the store's share of one connected Link:
// claim the public token, then PutItem with the session and the queued
// refresh. Two commits.
func BenchmarkDB_ConnectedLink(b *testing.B) {
	ctx := context.Background()
	db := MustOpenStore(b)
	i := 0
	for b.Loop() {
		id := "item-" + strconv.Itoa(i)
		public := "public-" + id
		if _, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: public, ClientUserID: "user-1", Owner: "bench", Now: clockStart, TTL: time.Minute}); err != nil {
			b.Fatal(err)
		}
		n := connected(id, "sess-"+id, public)
		n.RefreshAt = clockStart.Add(time.Hour)
		if _, err := db.PutItem(ctx, n); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDB_ItemsAfter is the read side of one reconcile pass: walking
// 5,000 Items a page of 100 at a time (Store.ItemsAfter, the cursor the
// last item_id). ns/op is one whole walk; divide by 5,000 for an Item.
func BenchmarkDB_ItemsAfter(b *testing.B) {
	const items, page = 5000, 100
	db, err := store.Open(filepath.Join(b.TempDir(), "linkd.db"), store.Options{Sealer: MustSealer(b, "k1:"+key1)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.BenchWalkItems(b, db, items, 32, page, func(i int64) linkd.NewItem {
		id := fmt.Sprintf("item-%05d", i)
		return linkd.NewItem{Item: newItem(id, "user-"+strconv.FormatInt(i%100, 10)), AccessToken: accessToken(id)}
	})
}

// BenchmarkDB_ConnectedLink_Concurrent is the store's share of connected
// Links as linkd serves them at c=64: each of 64 writers claims a public
// token (with the link, as linkd does), then stores the Item with its session, the session's link token
// counted and the queued refresh (PutItem), then stores the refreshed Item
// and ends its refresh (UpdateRefreshedItem), with random ids as Plaid's
// are (so each Link dirties its own pages). Each writer first records the
// Link's link token, which linkd does when it issues one: one commit more
// than a connected redirect costs. cpu-µs/link is the process's CPU time (user and
// system) per Link, steadier than ns/op on a shared machine;
// pages/link is bbolt's page writes per Link; writes/commit is the
// committer's mean batch.
func BenchmarkDB_ConnectedLink_Concurrent(b *testing.B) {
	const writers = 64
	ctx := context.Background()
	db, writes, commits := openCounting(b)
	rnd := func() string {
		var p [16]byte
		rand.Read(p[:])
		return hex.EncodeToString(p[:])
	}
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range work {
				id, user, sess, public, link := rnd(), "user-"+rnd(), rnd(), "public-sandbox-"+rnd(), "link-sandbox-"+rnd()
				// On an error go on taking work (continue), so the sender
				// never blocks on writers that all gave up.
				if err := db.PutLinkToken(ctx, &storagev1.StoredLinkToken{LinkToken: link, ClientUserId: user}); err != nil {
					b.Error(err)
					continue
				}
				now := time.Now()
				item := newItem(id, user)
				// The claim carries the link, as linkd's duplicate check
				// has it do (pending_links).
				if _, err := db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: public, ClientUserID: user, Owner: "bench-owner", Now: now, TTL: time.Minute,
					Link: &linkd.PendingLink{InstitutionID: "ins_3", Accounts: item.Accounts}}); err != nil {
					b.Error(err)
					continue
				}
				item.LinkSessionId = sess
				item.CreatedAt = timestamppb.New(now)
				r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
					PublicToken: public, InstitutionId: "ins_3", LinkSessionId: sess, Accounts: item.Accounts,
				}}}
				n := linkd.NewItem{Item: item, AccessToken: accessToken(id), PublicToken: public,
					Session: linkd.MergeRedirect(link, user, r, now), RefreshAt: now}
				if _, err := db.PutItem(ctx, n); err != nil {
					b.Error(err)
				}
				// The queued refresh, as linkd's refresh job stores it.
				_, err := db.UpdateRefreshedItem(ctx, id, func(item *linkdv1.Item) (bool, error) {
					item.Accounts[0].Name = "Plaid Gold Standard 0% Interest Checking"
					return true, nil
				})
				if err != nil {
					b.Error(err)
				}
			}
		})
	}
	cpu0 := processCPU()
	w0, c0 := writes.Load(), commits.Load()
	st0 := store.BoltDB(db).Stats().TxStats
	n := 0
	for b.Loop() {
		work <- struct{}{}
		n++
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(n)/1e3, "cpu-µs/link")
	st := store.BoltDB(db).Stats().TxStats
	b.ReportMetric(float64(st.GetWrite()-st0.GetWrite())/float64(n), "pages/link")
	b.ReportMetric(float64(st.GetSplit()-st0.GetSplit())/float64(n), "splits/link")
	if c := commits.Load() - c0; c > 0 {
		b.ReportMetric(float64(writes.Load()-w0)/float64(c), "writes/commit")
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
