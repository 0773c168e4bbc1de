package service

import (
	"context"
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestPendingLinks_Enter: a connection waits only for a pending one that
// PendingDuplicateOf says it repeats (same institution and accounts; same
// user, or another sharing a named account when all users count), and
// gets in once that one leaves. A context
// that is done already shows which calls would wait: they give up.
func TestPendingLinks_Enter(t *testing.T) {
	link := func(user, inst, name, mask string) *linkdv1.Item {
		return &linkdv1.Item{ClientUserId: user, InstitutionId: inst, Accounts: []*linkdv1.Account{{Name: name, Mask: mask}}}
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	var p pendingLinks
	leaveA, ok := p.enter(context.Background(), link("u1", "ins_1", "Checking", "0000"), true)
	if !ok {
		t.Fatal("first connection did not get in")
	}
	for _, tt := range []struct {
		name     string
		item     *linkdv1.Item
		allUsers bool
		waits    bool
	}{
		{"SameUserSameAccounts", link("u1", "ins_1", "Checking", "0000"), false, true},
		{"OtherUserSameAccountsAllUsers", link("u2", "ins_1", "Checking", "0000"), true, true},
		{"OtherUserSameAccountsPerUser", link("u2", "ins_1", "Checking", "0000"), false, false},
		{"OtherAccounts", link("u1", "ins_1", "Savings", "1111"), true, false},
		{"OtherInstitution", link("u1", "ins_2", "Checking", "0000"), true, false},
		{"NoAccounts", &linkdv1.Item{ClientUserId: "u1", InstitutionId: "ins_1"}, false, true},
		// Across users only a shared named account counts.
		{"OtherUserNoAccountsAllUsers", &linkdv1.Item{ClientUserId: "u2", InstitutionId: "ins_1"}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leave, ok := p.enter(done, tt.item, tt.allUsers)
			if ok == tt.waits {
				t.Fatalf("entered = %v, want %v", ok, !tt.waits)
			}
			if ok {
				leave()
			}
		})
	}
	got := make(chan bool)
	go func() {
		leave, ok := p.enter(context.Background(), link("u1", "ins_1", "Checking", "0000"), false)
		if ok {
			leave()
		}
		got <- ok
	}()
	leaveA()
	if !<-got {
		t.Fatal("a waiting connection did not get in once the pending one left")
	}
	if len(p.byInst) != 0 {
		t.Errorf("pending links left behind: %v", p.byInst)
	}
}
