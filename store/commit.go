package store

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// committer is leader-based group commit. bbolt's Batch waits out its whole
// MaxBatchDelay even for a lone writer (about 1.7 ms against 0.4 ms for a
// bare commit here); the committer never waits. When it is idle, a write
// commits at once, its caller leading. Writes that arrive while a commit
// runs queue up, and when the commit ends the first of them leads the next
// transaction, which carries all of them (up to maxBatch). So a lone writer
// pays one commit, and under load an fsync is shared by everyone who came
// during the previous one. When the last commit carried several writes,
// the next leader yields the processor once before taking the queue, so
// that the writers that commit just released can join: without it, N busy
// writers split into two halves that alternate (BenchmarkCommit_TinyWrite:
// 8.8 writes per commit for 16 writers, against 13-15 with the yield).
//
// When a function of a shared transaction fails, it is rerun alone and the
// others are committed together again, so one bad function fails only its
// own caller; functions may therefore run more than once.
type committer struct {
	bolt     *bbolt.DB
	maxBatch int
	onCommit func(batchSize int, d time.Duration)
	// boltBatch commits through bbolt's Batch instead, for the benchmark
	// that compares the two; only tests set it.
	boltBatch bool

	mu      sync.Mutex
	queue   []*call
	leading bool        // a goroutine is committing or about to
	busy    atomic.Bool // the last commit carried several writes
}

// call is one write waiting for its commit.
type call struct {
	fn   func(*bbolt.Tx) error
	done chan error // buffered: the leader never blocks on a caller
}

// errLead tells a queued caller that it leads the next transaction.
var errLead = errors.New("lead the next commit")

// do runs fn in a write transaction and returns once it is committed (or
// failed).
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	if c.boltBatch {
		return c.bolt.Batch(fn)
	}
	me := &call{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, me)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if lead {
		c.lead()
	}
	for {
		err := <-me.done
		if err != errLead {
			return err
		}
		c.lead()
	}
}

// lead commits the queued calls, then hands the lead to the first call
// that queued meanwhile, or goes idle.
func (c *committer) lead() {
	if c.busy.Load() {
		// Writers are concurrent: let the ones the last commit released
		// queue up again before taking the queue. No timer: a yield costs
		// microseconds, and a lone writer never gets here.
		runtime.Gosched()
	}
	c.mu.Lock()
	n := min(len(c.queue), c.maxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	c.busy.Store(len(batch) > 1)
	c.run(batch)

	c.mu.Lock()
	if len(c.queue) == 0 {
		c.leading = false
		c.queue = nil
	} else {
		c.queue[0].done <- errLead
	}
	c.mu.Unlock()
}

// run commits batch in one transaction and tells each caller. When a
// function fails, it alone gets its own error (from a rerun alone, since
// the failure may have come from a function before it in the shared
// transaction) and the rest are committed together again. When the commit
// itself fails, each function is rerun alone.
func (c *committer) run(batch []*call) {
	for len(batch) > 0 {
		failed := -1
		err := c.update(len(batch), func(tx *bbolt.Tx) error {
			for i, b := range batch {
				if err := safely(b.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		switch {
		case err == nil || len(batch) == 1:
			for _, b := range batch {
				b.done <- err
			}
			return
		case failed < 0:
			for _, b := range batch {
				b.done <- c.update(1, func(tx *bbolt.Tx) error { return safely(b.fn, tx) })
			}
			return
		}
		bad := batch[failed]
		batch = append(batch[:failed:failed], batch[failed+1:]...)
		bad.done <- c.update(1, func(tx *bbolt.Tx) error { return safely(bad.fn, tx) })
	}
}

// update is one bbolt write transaction, timed for onCommit.
func (c *committer) update(size int, fn func(*bbolt.Tx) error) error {
	start := time.Now()
	err := updateSafely(c.bolt, fn)
	if c.onCommit != nil {
		c.onCommit(size, time.Since(start))
	}
	return err
}

// safely runs fn, turning a panic into an error so that the other callers
// of a shared transaction are not left waiting for ever. Such a panic is
// bbolt's on a damaged page (see recovered).
func safely(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p)
		}
	}()
	return fn(tx)
}
