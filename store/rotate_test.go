package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/linkd/linkd/store"
)

func TestDB_RotateKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "linkd.db")
	const n = 250
	old := MustOpenStoreAt(t, path, MustParseKeys(t, "k1:"+key1))
	for i := range n {
		id := "item-" + strconv.Itoa(i)
		if err := old.PutItem(ctx, newItem(id, "user-1"), accessToken(id), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	// k2 becomes current; k1 stays so old records open during the rotation.
	db, err := store.Open(path, store.Options{Keys: MustParseKeys(t, "k1:"+key1+",k2:"+key2)})
	if err != nil {
		t.Fatal(err)
	}
	// Readers run throughout and must never fail.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i = (i + 7) % n {
				id := "item-" + strconv.Itoa(i)
				got, err := db.AccessToken(ctx, id)
				if err != nil || got.Reveal() != accessToken(id).Reveal() {
					t.Errorf("AccessToken(%s) during rotation = %v", id, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	done, err := db.RotateKeys(ctx, 100)
	stop.Store(true)
	wg.Wait()
	if err != nil || done != n {
		t.Fatalf("RotateKeys = %d, %v; want %d", done, err, n)
	}
	if again, err := db.RotateKeys(ctx, 100); err != nil || again != 0 {
		t.Errorf("second RotateKeys = %d, %v; want 0", again, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads during rotation", reads.Load())

	for _, id := range []string{"item-0", "item-" + strconv.Itoa(n-1)} {
		if kid := rawSealed(t, path, id).GetKeyId(); kid != "k2" {
			t.Errorf("%s sealed with %q after rotation, want k2", id, kid)
		}
	}
	// The old key is no longer needed.
	onlyNew := MustOpenStoreAt(t, path, MustParseKeys(t, "k2:"+key2))
	for i := range n {
		id := "item-" + strconv.Itoa(i)
		if got, err := onlyNew.AccessToken(ctx, id); err != nil || got.Reveal() != accessToken(id).Reveal() {
			t.Fatalf("AccessToken(%s) with only k2: %v", id, err)
		}
	}
}

