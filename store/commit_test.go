package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// mustCommitter returns a committer over a fresh bbolt file with one
// bucket, "b", and counts the writes its transactions carried.
func mustCommitter(t *testing.T) (*committer, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	b, err := bbolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	var writes, commits atomic.Int64
	c := &committer{bolt: b, maxBatch: DefaultMaxBatchSize, onCommit: func(n int, _ time.Duration) {
		writes.Add(int64(n))
		commits.Add(1)
	}}
	return c, &writes, &commits
}

func putKey(k string) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(k), []byte("v")) }
}

func TestCommitter(t *testing.T) {
	// A lone write commits at once, alone.
	t.Run("Lone", func(t *testing.T) {
		c, writes, commits := mustCommitter(t)
		for i := range 3 {
			if err := c.do(putKey(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if writes.Load() != 3 || commits.Load() != 3 {
			t.Fatalf("%d writes in %d commits, want 3 in 3", writes.Load(), commits.Load())
		}
	})

	// Concurrent writes share commits, and each is in the file when do
	// returns.
	t.Run("Grouped", func(t *testing.T) {
		c, writes, commits := mustCommitter(t)
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				k := fmt.Sprint(i)
				if err := c.do(putKey(k)); err != nil {
					t.Error(err)
					return
				}
				c.bolt.View(func(tx *bbolt.Tx) error {
					if tx.Bucket([]byte("b")).Get([]byte(k)) == nil {
						t.Errorf("write %s not committed when do returned", k)
					}
					return nil
				})
			})
		}
		wg.Wait()
		if writes.Load() != 64 {
			t.Fatalf("%d writes committed, want 64", writes.Load())
		}
		t.Logf("64 writes in %d commits", commits.Load())
	})

	// One failing (or panicking) function fails only its caller; the rest
	// of its batch commits.
	t.Run("FailureIsolated", func(t *testing.T) {
		c, _, _ := mustCommitter(t)
		bad := errors.New("bad function")
		var wg sync.WaitGroup
		errs := make([]error, 32)
		for i := range 32 {
			wg.Go(func() {
				switch i {
				case 7:
					errs[i] = c.do(func(*bbolt.Tx) error { return bad })
				case 9:
					errs[i] = c.do(func(*bbolt.Tx) error { panic("boom") })
				default:
					errs[i] = c.do(putKey(fmt.Sprint(i)))
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			switch i {
			case 7:
				if !errors.Is(err, bad) {
					t.Errorf("bad function: err = %v", err)
				}
			case 9:
				if err == nil {
					t.Error("panicking function succeeded")
				}
			default:
				if err != nil {
					t.Errorf("write %d failed beside a bad one: %v", i, err)
				}
			}
		}
		c.bolt.View(func(tx *bbolt.Tx) error {
			if n := tx.Bucket([]byte("b")).Stats().KeyN; n != 30 {
				t.Errorf("%d keys stored, want 30", n)
			}
			return nil
		})
	})

	// Functions that clash (each writes a key only if it is absent) see
	// each other in a shared transaction: exactly one wins, whatever the
	// batches and reruns.
	t.Run("Clash", func(t *testing.T) {
		c, _, _ := mustCommitter(t)
		exists := errors.New("exists")
		var wins atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				err := c.do(func(tx *bbolt.Tx) error {
					if tx.Bucket([]byte("b")).Get([]byte("x")) != nil {
						return exists
					}
					return tx.Bucket([]byte("b")).Put([]byte("x"), []byte("v"))
				})
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, exists) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d writers won, want 1", wins.Load())
		}
	})

	t.Run("MaxBatch", func(t *testing.T) {
		c, _, _ := mustCommitter(t)
		c.maxBatch = 2
		var biggest atomic.Int64
		c.onCommit = func(n int, _ time.Duration) {
			if int64(n) > biggest.Load() {
				biggest.Store(int64(n))
			}
		}
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if err := c.do(putKey(fmt.Sprint(i))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if biggest.Load() > 2 {
			t.Fatalf("a commit carried %d writes, max 2", biggest.Load())
		}
	})
}

// BenchmarkCommit_TinyWrite isolates the commit path: each write puts one
// small key, so the fsync and the batching are nearly all the cost. batch
// is bbolt's Batch with the previous release's 500 µs delay.
func BenchmarkCommit_TinyWrite(b *testing.B) {
	for _, mode := range []string{"batch", "committer"} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				bdb, err := bbolt.Open(filepath.Join(b.TempDir(), "c.db"), 0o600, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer bdb.Close()
				if err := bdb.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
					b.Fatal(err)
				}
				bdb.MaxBatchDelay = 500 * time.Microsecond
				c := &committer{bolt: bdb, maxBatch: DefaultMaxBatchSize, boltBatch: mode == "batch"}
				var n atomic.Int64
				var txMu sync.Mutex
				txs := map[int]bool{} // write transaction ids: one per commit
				work := make(chan struct{})
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						for range work {
							put := putKey(fmt.Sprint(n.Add(1)))
							err := c.do(func(tx *bbolt.Tx) error {
								txMu.Lock()
								txs[tx.ID()] = true
								txMu.Unlock()
								return put(tx)
							})
							if err != nil {
								b.Error(err)
							}
						}
					})
				}
				for b.Loop() {
					work <- struct{}{}
				}
				close(work)
				wg.Wait()
				b.ReportMetric(float64(n.Load())/float64(len(txs)), "writes/commit")
			})
		}
	}
}
