package store_test

import (
	"context"
	"testing"

	"github.com/linkd/linkd"
)

func TestDB_BeginExchange(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		earlier, err := db.BeginExchange(ctx, "public-sandbox-1", "user-1")
		if err != nil || earlier {
			t.Fatalf("first BeginExchange = %v, %v; want false, nil", earlier, err)
		}
		earlier, err = db.BeginExchange(ctx, "public-sandbox-1", "user-1")
		if err != nil || !earlier {
			t.Fatalf("second BeginExchange = %v, %v; want true, nil", earlier, err)
		}
	})
	t.Run("AbandonClears", func(t *testing.T) {
		db := MustOpenStore(t)
		if _, err := db.BeginExchange(ctx, "public-sandbox-1", "user-1"); err != nil {
			t.Fatal(err)
		}
		if err := db.AbandonExchange(ctx, "public-sandbox-1"); err != nil {
			t.Fatal(err)
		}
		if earlier, err := db.BeginExchange(ctx, "public-sandbox-1", "user-1"); err != nil || earlier {
			t.Errorf("BeginExchange after Abandon = %v, %v; want false, nil", earlier, err)
		}
		if err := db.AbandonExchange(ctx, "public-sandbox-never"); err != nil {
			t.Errorf("AbandonExchange of no mark: %v", err)
		}
	})
	t.Run("PutItemClears", func(t *testing.T) {
		db := MustOpenStore(t)
		if _, err := db.BeginExchange(ctx, "public-sandbox-1", "user-1"); err != nil {
			t.Fatal(err)
		}
		if err := db.PutItem(ctx, newItem("item-1", "user-1"), accessToken("item-1"), "public-sandbox-1"); err != nil {
			t.Fatal(err)
		}
		if earlier, err := db.BeginExchange(ctx, "public-sandbox-1", "user-1"); err != nil || earlier {
			t.Errorf("BeginExchange after PutItem = %v, %v; want false, nil", earlier, err)
		}
	})
	t.Run("ErrConflict", func(t *testing.T) {
		db := MustOpenStore(t)
		if _, err := db.BeginExchange(ctx, "public-sandbox-1", "user-1"); err != nil {
			t.Fatal(err)
		}
		_, err := db.BeginExchange(ctx, "public-sandbox-1", "user-2")
		wantCode(t, err, linkd.ECONFLICT)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		db := MustOpenStore(t)
		_, err := db.BeginExchange(ctx, "", "user-1")
		wantField(t, err, "public_token")
		_, err = db.BeginExchange(ctx, "public-sandbox-1", "")
		wantField(t, err, "client_user_id")
	})
}
