package store_test

import (
	"context"
	"testing"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/store"
)

func TestDB_RecordRedirect_EventBound(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	for i := range store.MaxSessionEvents {
		if err := db.RecordRedirect(ctx, "link-1", "user-1", eventRedirect("sess-1", "TRANSITION_VIEW", at(i))); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	err := db.RecordRedirect(ctx, "link-1", "user-1", eventRedirect("sess-1", "TRANSITION_VIEW", at(store.MaxSessionEvents)))
	wantCode(t, err, linkd.EPRECONDITION)
	// A resubmission of a recorded event stays a no-op at the bound.
	if err := db.RecordRedirect(ctx, "link-1", "user-1", eventRedirect("sess-1", "TRANSITION_VIEW", at(store.MaxSessionEvents-1))); err != nil {
		t.Errorf("resubmitted event at the bound: %v", err)
	}
	// The outcome still lands.
	if err := db.RecordRedirect(ctx, "link-1", "user-1", exitRedirect("sess-1", "requires_credentials")); err != nil {
		t.Errorf("exit after the bound: %v", err)
	}
}

func TestDB_SetItemStatus_Precedence(t *testing.T) {
	ctx := context.Background()
	const (
		good     = linkdv1.ItemStatus_ITEM_STATUS_GOOD
		login    = linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED
		expiring = linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION
		revoked  = linkdv1.ItemStatus_ITEM_STATUS_REVOKED
	)
	for _, tt := range []struct {
		name  string
		steps []linkdv1.ItemStatus
		want  linkdv1.ItemStatus
	}{
		{"PendingDoesNotCoverLogin", []linkdv1.ItemStatus{login, expiring}, login},
		{"PendingAfterGood", []linkdv1.ItemStatus{good, expiring}, expiring},
		{"LoginCoversPending", []linkdv1.ItemStatus{expiring, login}, login},
		{"RepairClearsLogin", []linkdv1.ItemStatus{login, good}, good},
		{"RevokedIsFinal", []linkdv1.ItemStatus{revoked, good, login}, revoked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpenStore(t)
			if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), ""); err != nil {
				t.Fatal(err)
			}
			var got *linkdv1.Item
			var err error
			for _, st := range tt.steps {
				if got, err = db.SetItemStatus(ctx, "item-1", st, ""); err != nil {
					t.Fatal(err)
				}
			}
			if got.GetStatus() != tt.want {
				t.Errorf("after %v: %v, want %v", tt.steps, got.GetStatus(), tt.want)
			}
		})
	}
}
