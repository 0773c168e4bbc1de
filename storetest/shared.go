package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
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
	// Two tokens whose links repeat each other, claimed at once on two
	// handles: exactly one claim is granted, and the other waits for it
	// (Repeats), whether the links are one user's or, when duplicates
	// count across users, two users'.
	for _, allUsers := range []bool{false, true} {
		t.Run(fmt.Sprintf("LinkRace/allUsers=%v", allUsers), func(t *testing.T) {
			a, b := open(t, MustSealer(t, false))
			for round := range 20 {
				link := &linkd.PendingLink{InstitutionID: fmt.Sprintf("ins_%d", round), AllUsers: allUsers,
					Accounts: []*linkdv1.Account{{Name: "Plaid Checking", Mask: "0000"}}}
				var wg sync.WaitGroup
				results := make([]linkd.ClaimResult, 2)
				errs := make([]error, 2)
				for i, s := range []linkd.Store{a, b} {
					user := "user-1"
					if allUsers {
						user = fmt.Sprintf("user-%d", i)
					}
					wg.Go(func() {
						results[i], errs[i] = s.ClaimExchange(context.Background(), linkd.ExchangeClaim{
							PublicToken: publicToken(fmt.Sprintf("%d-%d", round, i)), ClientUserID: user,
							Owner: fmt.Sprintf("owner-%d", i), Now: at(0), TTL: time.Minute, Link: link,
						})
					})
				}
				wg.Wait()
				if errs[0] != nil || errs[1] != nil {
					t.Fatalf("ClaimExchange: %v, %v", errs[0], errs[1])
				}
				if results[0].Claimed == results[1].Claimed || !results[0].Repeats && !results[1].Repeats {
					t.Fatalf("round %d: claims %+v: want exactly one granted and the other Repeats", round, results)
				}
			}
		})
	}
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
