package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
)

// RunShared runs the promises that hold across handles: two handles on one
// backend, as two replicas have, racing. A backend that one process owns
// (bbolt locks its file) cannot open two handles and runs Run only.
func RunShared(t *testing.T, open SharedOpenFunc) {
	t.Run("ClaimRace", func(t *testing.T) {
		a, b := open(t, MustSealer(t, false))
		for round := range 10 {
			pt := publicToken(fmt.Sprint(round))
			var wg sync.WaitGroup
			results := make([]linkd.ClaimResult, 2)
			errs := make([]error, 2)
			for i, s := range []linkd.Store{a, b} {
				wg.Go(func() {
					results[i], errs[i] = s.ClaimExchange(context.Background(), linkd.ExchangeClaim{
						PublicToken: pt, ClientUserID: "user-1", Owner: fmt.Sprintf("owner-%d", i), Now: at(0), TTL: time.Minute,
					})
				})
			}
			wg.Wait()
			claimed := 0
			for i, r := range results {
				if errs[i] != nil {
					t.Fatalf("ClaimExchange: %v", errs[i])
				}
				switch {
				case r.Claimed:
					claimed++
				case r.HeldBy == "" && r.Item == nil:
					t.Fatalf("claim = %+v: neither claimed, held nor spent", r)
				}
			}
			if claimed != 1 {
				t.Fatalf("round %d: %d claims granted, want exactly 1 (%+v)", round, claimed, results)
			}
		}
	})
	t.Run("SessionRace", func(t *testing.T) {
		a, b := open(t, MustSealer(t, false))
		raceSession(t, a, b)
	})
	t.Run("SessionsPerLinkTokenRace", func(t *testing.T) {
		a, b := open(t, MustSealer(t, false))
		raceSessionBound(t, a, b)
	})
	t.Run("ItemAcrossHandles", func(t *testing.T) {
		ctx := context.Background()
		a, b := open(t, MustSealer(t, false))
		put := mustPutItem(t, a, linkd.NewItem{Item: newItem("item-1", "user-1", 0), PublicToken: publicToken("1")})
		got, err := b.GetItem(ctx, "item-1")
		if err != nil {
			t.Fatal(err)
		}
		wantProto(t, got, put)
		if tok, err := b.AccessToken(ctx, "item-1"); err != nil || tok != accessToken("item-1") {
			t.Fatalf("AccessToken on the other handle: %v", err)
		}
		r, err := b.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken("1"), ClientUserID: "user-1", Owner: "b", Now: at(1), TTL: time.Minute})
		if err != nil || r.Item.GetItemId() != "item-1" {
			t.Fatalf("claim on the other handle = %+v, %v; want the Item", r, err)
		}
	})
}
