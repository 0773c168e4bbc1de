package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/plaidemu"
)

// TestLinkd_Replicas_DuplicateItems runs pairs of linkd processes on one
// Postgres and one emulator. Connected redirects of one bank login from
// two Link sessions (two public tokens), sent to both replicas at once,
// make one Item and one Plaid exchange: the other is ALREADY_EXISTS
// naming it. That holds for one user's two sessions under the default
// policy and for two users' under -duplicate-items all. Then a replica
// that dies mid-link (its exchange claim left behind) holds a duplicate
// of that link on the other replica while the claim lives (UNAVAILABLE),
// and no longer: once the claim lapses, the link goes ahead.
func TestLinkd_Replicas_DuplicateItems(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and Postgres; run without -short")
	}
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "replica-client", Secret: "replica-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	bin := buildLinkd(t)
	ctx := context.Background()

	for _, policy := range []string{"user", "all"} {
		t.Run("AtOnce/"+policy, func(t *testing.T) {
			dsn := pgtest.MustStart(t)
			env := "LINKD_DUPLICATE_ITEMS=" + policy
			replicas := []*replica{startReplica(t, bin, dsn, emu.URL(), env), startReplica(t, bin, dsn, emu.URL(), env)}
			const rounds = 10
			before := emu.Calls(exchangePath)
			for round := range rounds {
				users := []string{fmt.Sprintf("%s-user-%d", policy, round), fmt.Sprintf("%s-user-%d", policy, round)}
				if policy == "all" {
					users[1] += "-shared" // one bank login in two users' hands
				}
				// A login of its own each round: under "all" every
				// round's users are compared.
				mask := fmt.Sprintf("%04d", round)
				urls := make([]string, 2)
				tokens := make([]string, 2)
				for i, r := range replicas {
					tok, publicToken := mustLink(t, r.c, users[i])
					tokens[i] = tok.GetLinkToken()
					urls[i] = connectedURLWith(publicToken, fmt.Sprintf("%s-sess-%d-%d", policy, round, i), "Plaid Checking", mask)
				}
				// Plaid answers slowly: each redirect is past its
				// duplicate check before the other's Item could be
				// stored, unless it waits for the other.
				emu.SetFaults(plaidemu.Faults{Latency: 200 * time.Millisecond})
				var wg sync.WaitGroup
				items := make([]string, 2)
				errs := make([]error, 2)
				for i, r := range replicas {
					wg.Go(func() {
						resp, err := r.c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: urls[i], LinkToken: tokens[i]})
						items[i], errs[i] = resp.GetItem().GetItemId(), err
					})
				}
				wg.Wait()
				emu.SetFaults(plaidemu.Faults{})
				var linked []string
				for i := range replicas {
					if errs[i] == nil {
						linked = append(linked, items[i])
					} else if status.Code(errs[i]) != codes.AlreadyExists {
						t.Fatalf("round %d, replica %d: %v; want the Item or ALREADY_EXISTS", round, i, errs[i])
					}
				}
				if len(linked) != 1 {
					t.Fatalf("round %d: Items %q linked, want exactly one (two means Plaid billed a duplicate)", round, linked)
				}
				for i := range replicas {
					if errs[i] != nil && duplicateOf(errs[i]) != linked[0] {
						t.Errorf("round %d, replica %d: duplicate of %q, want %q", round, i, duplicateOf(errs[i]), linked[0])
					}
				}
			}
			if n := emu.Calls(exchangePath) - before; n != rounds {
				t.Fatalf("Plaid saw %d exchanges in %d rounds, want one each", n, rounds)
			}
		})
	}

	t.Run("CrashedReplica", func(t *testing.T) {
		dsn := pgtest.MustStart(t)
		a, b := startReplica(t, bin, dsn, emu.URL()), startReplica(t, bin, dsn, emu.URL())
		const user = "crash-user"
		tokA, ptA := mustLink(t, a.c, user)
		tokB, ptB := mustLink(t, b.c, user)
		before := emu.Calls(exchangePath)
		// a's exchange happens at Plaid, and a dies before the answer:
		// its claim, with the link, stays in the store.
		emu.HangAfterNext(exchangePath)
		go a.c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(ptA, "crash-sess-a"), LinkToken: tokA.GetLinkToken()})
		for emu.Calls(exchangePath) == before {
			time.Sleep(10 * time.Millisecond)
		}
		died := time.Now()
		if err := a.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		a.cmd.Wait()

		dup := &linkdv1.SubmitRedirectRequest{Url: connectedURL(ptB, "crash-sess-b"), LinkToken: tokB.GetLinkToken()}
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := b.c.SubmitRedirect(short, dup)
		if time.Since(died) < 10*time.Second { // the claim (15 s) surely still lived
			wantCode(t, err, codes.Unavailable)
		}
		if n := emu.Calls(exchangePath) - before; n != 1 {
			t.Fatalf("Plaid exchanges = %d while the dead replica's link was pending, want only its own", n)
		}
		// Past the claim's TTL the link goes ahead: the dead replica's
		// Item never reached linkd, so this is the user's one Item.
		long, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		resp, err := b.c.SubmitRedirect(long, dup)
		if err != nil {
			t.Fatalf("the duplicate once the dead replica's claim lapsed: %v, want it linked", err)
		}
		list, err := b.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: user})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.GetItems()) != 1 || list.GetItems()[0].GetItemId() != resp.GetItem().GetItemId() {
			t.Errorf("Items = %v, want only %s", list.GetItems(), resp.GetItem().GetItemId())
		}
		t.Logf("linked %v after the replica died (claim TTL 15 s)", time.Since(died).Round(100*time.Millisecond))
	})
}
