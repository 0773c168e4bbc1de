package store_test

import (
	"context"
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

var (
	checkMiB  = flag.Int("check.mib", 64, "size in MiB of the file BenchmarkDB_Check checks")
	checkCold = flag.Bool("check.cold", false, "drop the file from the page cache before BenchmarkDB_Check opens it (run with -benchtime 1x: a first start after a reboot)")
)

// BenchmarkDB_Check times the consistency check linkd runs before it
// serves, on a file of -check.mib MiB of 1 KiB values (RELIABILITY.md has
// the figure for 1 GiB).
func BenchmarkDB_Check(b *testing.B) {
	path := filepath.Join(b.TempDir(), "linkd.db")
	fillBolt(b, path, *checkMiB<<20)
	if *checkCold {
		dropCache(b, path)
	}
	db := MustOpenStoreAt(b, path, "k1:"+key1)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := db.Check(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(*checkMiB), "MiB")
}

// fillBolt writes about size bytes of random 1 KiB values into a bucket
// of its own, in large unsynced transactions (only the check is timed).
func fillBolt(tb testing.TB, path string, size int) {
	tb.Helper()
	start := time.Now()
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true, NoFreelistSync: false})
	if err != nil {
		tb.Fatal(err)
	}
	defer bdb.Close()
	val := make([]byte, 1024)
	n := size / len(val)
	const perTx = 20000
	for i := 0; i < n; i += perTx {
		err := bdb.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
			if err != nil {
				return err
			}
			bk.FillPercent = 0.9
			for j := i; j < min(i+perTx, n); j++ {
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], uint64(j))
				for w := 0; w < len(val); w += 8 {
					binary.LittleEndian.PutUint64(val[w:], rand.Uint64())
				}
				if err := bk.Put(k[:], val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := bdb.Sync(); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("filled %d MiB in %v", size>>20, time.Since(start))
}

// dropCache asks the kernel to drop the file's pages from its cache (this
// file only: nothing else on the machine is slowed).
func dropCache(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		tb.Fatal(err)
	}
}
