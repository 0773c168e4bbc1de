package store_test

import (
	"context"
	"testing"

	"github.com/linkd/linkd"
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
	wantCode(t, err, linkd.ERATELIMIT)
	// The outcome still lands.
	if err := db.RecordRedirect(ctx, "link-1", "user-1", exitRedirect("sess-1", "requires_credentials")); err != nil {
		t.Errorf("exit after the bound: %v", err)
	}
}
