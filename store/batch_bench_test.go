package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd/store"
)

// BenchmarkDB_PutItem_Concurrent measures group commit: writers goroutines
// each storing Items as fast as they are acknowledged, for several batch
// delays. ns/op is the cost per Item across all writers; "ms/ack" is what
// one writer waits. It chose DefaultMaxBatchDelay (see BENCHMARKS.md).
func BenchmarkDB_PutItem_Concurrent(b *testing.B) {
	for _, delay := range []time.Duration{-1, 200 * time.Microsecond, store.DefaultMaxBatchDelay, 2 * time.Millisecond, 10 * time.Millisecond} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("delay=%v/writers=%d", max(delay, 0), writers), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "linkd.db")
				db, err := store.Open(path, store.Options{Keys: MustParseKeys(b, "k1:"+key1), MaxBatchDelay: delay})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				ctx := context.Background()
				var n, waited atomic.Int64
				work := make(chan struct{})
				var wg sync.WaitGroup
				b.ResetTimer()
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range work {
							i := n.Add(1)
							id := "item-" + strconv.FormatInt(i, 10)
							start := time.Now()
							if err := db.PutItem(ctx, newItem(id, "user-"+strconv.FormatInt(i%100, 10)), accessToken(id), "public-"+id); err != nil {
								b.Error(err)
							}
							waited.Add(int64(time.Since(start)))
						}
					}()
				}
				for b.Loop() {
					work <- struct{}{}
				}
				close(work)
				wg.Wait()
				b.ReportMetric(float64(waited.Load())/float64(n.Load())/1e6, "ms/ack")
			})
		}
	}
}
