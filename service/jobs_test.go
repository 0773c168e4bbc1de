package service_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/store"
)

// panickyStore panics in Prune, as bbolt does on a damaged page read from
// a background goroutine.
type panickyStore struct {
	*store.DB
	prunes atomic.Int32
}

func (p *panickyStore) Prune(context.Context, linkd.PruneCutoffs) (linkd.PruneResult, error) {
	p.prunes.Add(1)
	panic("page 42: invalid page type (injected)")
}

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestService_RunJobs_RecoversPanic: a job that panics is reported and runs
// again; the process (here, the test binary) lives on.
func TestService_RunJobs_RecoversPanic(t *testing.T) {
	e := mustEnv(t)
	ps := &panickyStore{DB: e.db}
	logs := &lockedBuffer{}
	svc, err := service.New(service.Config{Plaid: mustPlaid(t, e), Store: ps, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.RunJobs(ctx, service.Jobs{Retention: time.Hour, PruneEvery: 10 * time.Millisecond})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for ps.prunes.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n := ps.prunes.Load(); n < 2 {
		t.Errorf("prune ran %d times, want it to run again after its panic", n)
	}
	if !strings.Contains(logs.String(), "invalid page type (injected)") {
		t.Errorf("the panic was not reported; logs:\n%s", logs.String())
	}
}
