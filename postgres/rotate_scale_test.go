package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd/storetest"
)

// TestDB_ResealAccessTokens_Scale logs how long one key rotation of
// LINKD_RESEAL_ITEMS Items takes, 100 a batch as the reseal job runs it
// (BENCHMARKS.md); it runs only when that is set, since filling the table
// takes a while, and asserts no time: every token re-sealed, once.
func TestDB_ResealAccessTokens_Scale(t *testing.T) {
	var n int
	if _, err := fmt.Sscan(os.Getenv("LINKD_RESEAL_ITEMS"), &n); err != nil || n <= 0 {
		t.Skip("set LINKD_RESEAL_ITEMS to the number of Items to rotate")
	}
	ctx := context.Background()
	db, dsn, _ := MustOpen(t)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				n := newItem(fmt.Sprintf("item-%07d", i), "user-1", t0)
				n.PublicToken = ""
				if _, err := db.PutItem(ctx, n); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rotated := MustOpenDSN(t, dsn, mustSealer(t, "k1", "k2"))
	start := time.Now()
	total := storetest.ResealPass(t, rotated, 100)
	d := time.Since(start)
	if total != n {
		t.Fatalf("re-sealed %d, want %d", total, n)
	}
	t.Logf("rotated %d access tokens in %v (%.1f µs each)", n, d, float64(d.Microseconds())/float64(n))
}
