package store_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/seal"
	"github.com/linkd/linkd/store"
	"github.com/linkd/linkd/storetest"
)

// rotateItems is how many Items BenchmarkDB_ResealAccessTokens rotates.
const rotateItems = 50_000

// fillForRotation writes n Items sealed under k1 into a new file at path,
// 64 writers at once so that their commits are shared.
func fillForRotation(b *testing.B, path string, n int) {
	b.Helper()
	db, err := openAt(path, "k1:"+key1)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				id := fmt.Sprintf("item-%07d", i)
				if _, err := db.PutItem(ctx, linkd.NewItem{Item: newItem(id, fmt.Sprintf("user-%d", i%1000)), AccessToken: accessToken(id)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

// copyFile copies the file at from to to.
func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDB_ResealAccessTokens: one op is a whole key rotation of
// rotateItems Items (every token sealed under k1, k2 now current), 100 a
// batch, as the reseal job and linkd rotate run it.
func BenchmarkDB_ResealAccessTokens(b *testing.B) {
	dir := b.TempDir()
	template := filepath.Join(dir, "template.db")
	fillForRotation(b, template, rotateItems)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("run-%d.db", i))
		copyFile(b, template, path)
		db, err := openAt(path, "k1:"+key1+",k2:"+key2)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		total := storetest.ResealPass(b, db, 100)
		b.StopTimer()
		if total != rotateItems {
			b.Fatalf("re-sealed %d, want %d", total, rotateItems)
		}
		db.Close()
		os.Remove(path)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/rotation")
}

// openAt opens the store at path with the master keys keys.
func openAt(path, keys string) (*store.DB, error) {
	k, err := seal.ParseMasterKeys(keys, "")
	if err != nil {
		return nil, err
	}
	s, err := seal.New(k)
	if err != nil {
		return nil, err
	}
	return store.Open(path, store.Options{Sealer: s})
}
