package service_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/service"
)

// checkingAccount is the account the tests' connected redirects name.
var checkingAccount = &linkdv1.Account{Id: "acc-1", Name: "Plaid Checking", Mask: "0000"}

// mustConnected issues a link token of user on svc and a public token of
// it at the emulator, and returns the stored link token with a connected
// redirect of that public token naming account.
func mustConnected(t *testing.T, e *env, svc *service.Service, user, sessionID string, account *linkdv1.Account) (*storagev1.StoredLinkToken, *linkdv1.WebviewRedirect) {
	t.Helper()
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	tok, err := svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := e.emu.CreatePublicToken(tok.GetLinkToken(), "ins_109508", nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := svc.LinkToken(ctx, tok.GetLinkToken())
	if err != nil {
		t.Fatal(err)
	}
	return stored, &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: pt, InstitutionId: "ins_109508", InstitutionName: "First Platypus Bank",
		LinkSessionId: sessionID, Accounts: []*linkdv1.Account{account},
	}}}
}

// mustReplicaWith returns another Service over e's store and a Plaid
// client of e's emulator, with the duplicate policy and claim TTL given.
func mustReplicaWith(t *testing.T, e *env, duplicates string, claimTTL time.Duration) *service.Service {
	t.Helper()
	svc, err := service.New(service.Config{Plaid: mustPlaid(t, e), Store: e.db, Duplicates: duplicates, ClaimTTL: claimTTL,
		Defaults: service.LinkDefaults{ClientName: "test", Products: []string{"transactions"}, CountryCodes: []string{"US"}, Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestService_SubmitRedirect_DuplicateAcrossReplicas: two replicas (two
// Services, each with its own in-process gate, on one store) given
// connected redirects of one bank login at once, from two Link sessions:
// one Item, one Plaid exchange, and the other redirect is refused as its
// duplicate. Without the pending link in the store both pass the
// duplicate check (Plaid answers slowly) and Plaid bills two Items. Under
// the all-users policy the same holds for two users sharing the login.
func TestService_SubmitRedirect_DuplicateAcrossReplicas(t *testing.T) {
	for _, policy := range []string{service.DuplicatesPerUser, service.DuplicatesAllUsers} {
		t.Run(policy, func(t *testing.T) {
			e := mustEnv(t)
			ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
			replicas := []*service.Service{mustReplicaWith(t, e, policy, 0), mustReplicaWith(t, e, policy, 0)}
			const rounds = 3
			for round := range rounds {
				users := []string{fmt.Sprintf("user-%d", round), fmt.Sprintf("user-%d", round)}
				if policy == service.DuplicatesAllUsers {
					users[1] = fmt.Sprintf("user-%d-shared", round)
				}
				// A bank login of its own each round: under the all-users
				// policy the users of every round are compared.
				account := &linkdv1.Account{Id: "acc-1", Name: "Plaid Checking", Mask: fmt.Sprintf("%04d", round)}
				toks := make([]*storagev1.StoredLinkToken, 2)
				redirects := make([]*linkdv1.WebviewRedirect, 2)
				for i, svc := range replicas {
					toks[i], redirects[i] = mustConnected(t, e, svc, users[i], fmt.Sprintf("sess-%d-%d", round, i), account)
				}
				// Plaid answers slowly, so that each is past its check
				// before the other's Item could be stored, unless it waits.
				e.emu.SetFaults(plaidemu.Faults{Latency: 150 * time.Millisecond})
				var wg sync.WaitGroup
				items := make([]*linkdv1.Item, 2)
				errs := make([]error, 2)
				for i, svc := range replicas {
					wg.Go(func() {
						out, err := svc.SubmitRedirect(ctx, toks[i], redirects[i])
						items[i], errs[i] = out.Item, err
					})
				}
				wg.Wait()
				e.emu.SetFaults(plaidemu.Faults{})
				linked := 0
				for i := range replicas {
					var le *linkd.Error
					switch {
					case errs[i] == nil:
						linked++
					case errors.As(errs[i], &le) && le.Reason == linkd.ReasonDuplicateItem:
					default:
						t.Fatalf("round %d, replica %d: %v; want the Item or DUPLICATE_ITEM", round, i, errs[i])
					}
				}
				if linked != 1 {
					t.Fatalf("round %d: %d Items linked (%v, %v), want exactly 1", round, linked, items[0].GetItemId(), items[1].GetItemId())
				}
			}
			if n := e.emu.Calls("/item/public_token/exchange"); n != rounds {
				t.Errorf("Plaid exchanges = %d for %d rounds, want one each: a duplicate was billed", n, rounds)
			}
		})
	}
}

// TestService_SubmitRedirect_WaitsForCrashedReplicasLink: a replica that
// claimed a link and vanished (its claim left in the store) holds a
// duplicate of that link on another replica while the claim lives (the
// caller's deadline ends first: UNAVAILABLE, nothing exchanged), and no
// longer than that: once the claim lapses, the link goes ahead.
func TestService_SubmitRedirect_WaitsForCrashedReplicasLink(t *testing.T) {
	e := mustEnv(t)
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	replica := mustReplicaWith(t, e, service.DuplicatesPerUser, 0)
	crashed := func(user, publicToken string, ttl time.Duration) {
		t.Helper()
		r, err := e.db.ClaimExchange(ctx, linkd.ExchangeClaim{PublicToken: publicToken, ClientUserID: user, Owner: "crashed-replica",
			Now: time.Now(), TTL: ttl, Link: &linkd.PendingLink{InstitutionID: "ins_109508", Accounts: []*linkdv1.Account{checkingAccount}}})
		if err != nil || !r.Claimed {
			t.Fatalf("the crashed replica's claim = %+v, %v", r, err)
		}
	}

	// Live for an hour: the duplicate waits out its caller's deadline.
	crashed("user-1", mustPublicToken(t, e, "user-1"), time.Hour)
	tok, r := mustConnected(t, e, replica, "user-1", "sess-held", checkingAccount)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := replica.SubmitRedirect(short, tok, r); linkd.ErrorCode(err) != linkd.EUNAVAILABLE {
		t.Fatalf("duplicate of a live pending link: %v (code %q), want EUNAVAILABLE", err, linkd.ErrorCode(err))
	}
	if n := e.emu.Calls("/item/public_token/exchange"); n != 0 {
		t.Fatalf("Plaid exchanges = %d, want none while the pending link lives", n)
	}

	// Lapsing in a moment: the duplicate waits for that, then links.
	crashed("user-2", mustPublicToken(t, e, "user-2"), 300*time.Millisecond)
	tok, r = mustConnected(t, e, replica, "user-2", "sess-lapsed", checkingAccount)
	long, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := replica.SubmitRedirect(long, tok, r)
	if err != nil {
		t.Fatalf("duplicate of a lapsed pending link: %v, want it linked", err)
	}
	if out.Item.GetClientUserId() != "user-2" {
		t.Errorf("Item = %v", out.Item)
	}
}
