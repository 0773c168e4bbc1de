package store_test

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	"github.com/linkd/linkd/store"
)

// migrateItems is how many Items BenchmarkOpen_MigrateVersion1 migrates.
const migrateItems = 100_000

// BenchmarkOpen_MigrateVersion1: one op is the first Open of a version 1
// file of migrateItems Items (each with a sealed token, every other one
// queued, every third with a spent public token): the migration to
// version 2. peak-heap-MB is the most heap in use during it, sampled every
// millisecond, over what was in use before; B/op is all it allocated.
func BenchmarkOpen_MigrateVersion1(b *testing.B) {
	dir := b.TempDir()
	template := filepath.Join(dir, "v1.db")
	sealer := MustSealer(b, "k1:"+key1)
	writeV1Bench(b, template, migrateItems)
	b.ReportAllocs()
	b.ResetTimer()
	peak := uint64(0)
	for i := range b.N {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("run-%d.db", i))
		copyFile(b, template, path)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		stop, sampled := make(chan struct{}), make(chan uint64)
		go func() {
			top := uint64(0)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				top = max(top, ms.HeapAlloc)
				select {
				case <-stop:
					sampled <- top
					return
				case <-t.C:
				}
			}
		}()
		b.StartTimer()
		db, err := store.Open(path, store.Options{Sealer: sealer})
		b.StopTimer()
		close(stop)
		if top := <-sampled; top > base {
			peak = max(peak, top-base)
		}
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// writeV1Bench writes a version 1 file of n Items at path, 5,000 a
// transaction (bbolt splits a node only at commit, so one transaction of
// random inserts copies quadratically).
func writeV1Bench(b *testing.B, path string, n int) {
	b.Helper()
	bolt, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bolt.Close()
	sealer := MustSealer(b, "k1:"+key1)
	for from := 0; from < n; from += 5000 {
		err = bolt.Update(func(tx *bbolt.Tx) error {
			putValue(b, tx, "meta", []byte("version"), &storagev1.SchemaVersion{Version: 1})
			for i := from; i < min(n, from+5000); i++ {
				id := fmt.Sprintf("item-%07d", i)
				putV1Item(b, tx, sealer, id, fmt.Sprintf("user-%d", i%1000), at(i))
				if i%2 == 0 {
					due := at(100_000 + i).AsTime()
					putValue(b, tx, "refresh_queue", append(v1Time(due), id...), nil)
					putValue(b, tx, "item_refreshes", append(v1Str(id), v1Time(due)...), nil)
				}
				if i%3 == 0 {
					sum := sha256.Sum256([]byte("public-" + id))
					putValue(b, tx, "public_token_uses", sum[:], &storagev1.PublicTokenUse{ItemId: id, ExchangedAt: at(1)})
					putValue(b, tx, "item_public_tokens", append(v1Str(id), sum[:]...), nil)
				}
			}
			createV1Buckets(b, tx)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := bolt.Sync(); err != nil {
		b.Fatal(err)
	}
}

// putV1Item writes an Item as version 1 kept it: its record, its
// user_items and institution_items entries, and its access token sealed
// by sealer in access_tokens.
func putV1Item(tb testing.TB, tx *bbolt.Tx, sealer linkd.Sealer, id, user string, created *timestamppb.Timestamp) {
	tb.Helper()
	item := newItem(id, user)
	item.CreatedAt = created
	putValue(tb, tx, "items", []byte(id), item)
	putValue(tb, tx, "user_items", v0UserItemKey(user, created.AsTime(), id), nil)
	putValue(tb, tx, "institution_items", v0UserItemKey("ins_3", created.AsTime(), id), nil)
	sealed, err := sealer.SealAccessToken(id, accessToken(id))
	if err != nil {
		tb.Fatal(err)
	}
	putValue(tb, tx, "access_tokens", []byte(id), sealed)
}

// createV1Buckets creates the buckets of version 1 that hold no Item.
func createV1Buckets(tb testing.TB, tx *bbolt.Tx) {
	tb.Helper()
	for _, name := range []string{"link_tokens", "link_token_renewals", "sessions", "session_starts", "exchange_claims",
		"webhooks", "webhook_deliveries", "leases"} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			tb.Fatal(err)
		}
	}
}

// putValue writes m (nil: an empty index value) into bucket, creating it.
func putValue(tb testing.TB, tx *bbolt.Tx, bucket string, key []byte, m proto.Message) {
	tb.Helper()
	bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		tb.Fatal(err)
	}
	var v []byte
	if m != nil {
		if v, err = proto.Marshal(m); err != nil {
			tb.Fatal(err)
		}
	}
	if err := bk.Put(key, v); err != nil {
		tb.Fatal(err)
	}
}
