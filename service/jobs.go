package service

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/linkd/linkd"
)

// Jobs configures the background work of RunJobs.
type Jobs struct {
	// Retention is how long Link sessions (since last seen, by linkd's
	// clock), webhooks (since received) and link tokens (since expired)
	// are kept; 0 keeps them.
	Retention time.Duration
	// PruneEvery, ResealEvery, RefreshEvery and HostedEvery space the
	// jobs' runs; defaults when zero.
	PruneEvery, ResealEvery, RefreshEvery, HostedEvery time.Duration
	// ReconcileEvery is how often each Item is compared with Plaid's
	// /item/get at most (DefaultReconcileEvery when zero); ReconcileRate
	// caps the reconcile job's Plaid calls per second
	// (DefaultReconcileRate when zero; negative is no cap);
	// ReconcileTick spaces its runs (a minute when zero).
	ReconcileEvery time.Duration
	ReconcileRate  float64
	ReconcileTick  time.Duration
	// ReplayWindow is how long webhook delivery ids are kept: longer than
	// a delivery is accepted. Default 2*MaxWebhookAge when zero.
	ReplayWindow time.Duration
}

// Job defaults.
const (
	defaultPruneEvery   = time.Hour
	defaultResealEvery  = 10 * time.Minute
	defaultRefreshEvery = 5 * time.Second
	defaultHostedEvery  = time.Minute
	defaultReplayWindow = 10 * time.Minute
	resealBatch         = 100
)

// RunJobs runs the background jobs until ctx ends: retention pruning,
// re-sealing access tokens under the current master key, the queued
// Item refreshes, asking Plaid about Hosted Link tokens whose webhooks
// may have been lost (CheckHostedLinkTokens), and reconciling Items with
// Plaid (see reconcile.go). Each job runs only while this process holds its lease
// in the store, so replicas sharing a store take turns rather than
// repeating the work. A job that fails is logged and runs again later; a
// job that panics is recovered, logged with its stack, and runs again
// later, never taking the process down.
func (s *Service) RunJobs(ctx context.Context, j Jobs) {
	if j.PruneEvery <= 0 {
		j.PruneEvery = defaultPruneEvery
	}
	if j.ResealEvery <= 0 {
		j.ResealEvery = defaultResealEvery
	}
	if j.RefreshEvery <= 0 {
		j.RefreshEvery = defaultRefreshEvery
	}
	if j.HostedEvery <= 0 {
		j.HostedEvery = defaultHostedEvery
	}
	if j.ReplayWindow <= 0 {
		j.ReplayWindow = defaultReplayWindow
	}
	if j.ReconcileTick <= 0 {
		j.ReconcileTick = defaultReconcileTick
	}
	if j.ReconcileRate == 0 {
		j.ReconcileRate = DefaultReconcileRate
	}
	var wg sync.WaitGroup
	var names []string
	run := func(name string, every time.Duration, wake <-chan struct{}, fn func(context.Context) error) {
		names = append(names, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				s.runJob(ctx, name, 3*every, fn) // at start too: a restart after a long stop catches up
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				case <-wake:
				}
			}
		}()
	}
	run("prune", j.PruneEvery, nil, func(ctx context.Context) error { return s.prune(ctx, j) })
	run("reseal", j.ResealEvery, nil, s.reseal)
	run("refresh", j.RefreshEvery, s.refreshNow, func(ctx context.Context) error {
		return s.drainRefreshes(ctx, drainLeaseTTL(j.RefreshEvery))
	})
	run("hosted", j.HostedEvery, nil, func(ctx context.Context) error {
		for {
			n, err := s.CheckHostedLinkTokens(ctx)
			if err != nil || n < hostedBatch {
				return err
			}
		}
	})
	run("reconcile", j.ReconcileTick, nil, func(ctx context.Context) error {
		_, err := s.reconcile(ctx, j.ReconcileEvery, s.pacer("reconcile", j.ReconcileRate, 3*j.ReconcileTick), reconcileLease)
		if errors.Is(err, errLeaseLost) {
			return nil // another process walks now
		}
		return err
	})
	wg.Wait()
	s.releaseLeases(names)
}

// drainRefreshes runs the queued refreshes a batch at a time until a
// batch finds fewer due, holding the refresh job's lease (runJob took it)
// for ttl: each Item starts only under a lease renewed within ttl/3, so
// that no batch, however slow Plaid is, outlives it and has another
// replica refresh the same Items beside it. It returns nil, stopping,
// once another process holds the lease; Items already started finish.
func (s *Service) drainRefreshes(ctx context.Context, ttl time.Duration) error {
	lease := &leaseHold{s: s, name: "refresh", ttl: ttl}
	for {
		n, err := s.refreshDue(ctx, lease)
		if errors.Is(err, errLeaseLost) {
			return nil
		}
		if err != nil || n < refreshBatch {
			return err
		}
	}
}

// drainLeaseTTL is the refresh job's lease while it drains: three of its
// runs' spacing (every), and never less than three refreshes' timeout, so
// that an Item started under a lease that has two thirds of it left ends
// before the lease does.
func drainLeaseTTL(every time.Duration) time.Duration {
	return max(3*every, 3*refreshTimeout)
}

// leaseHold keeps a job's lease while the job starts pieces of work (the
// drain's Items), each of which ends well within two thirds of ttl.
type leaseHold struct {
	s    *Service
	name string
	ttl  time.Duration

	mu      sync.Mutex
	renewed time.Time // s.now when the lease was last renewed; zero before
	lost    bool
}

// hold returns nil when the lease runs for at least two thirds of its ttl
// from now, renewing it when a third has passed since the last renewal
// (one store write per ttl/3, not one per Item); errLeaseLost, from then
// on, once another process holds it; the store's failure to renew it. A
// nil hold is no lease: always nil.
func (h *leaseHold) hold(ctx context.Context) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return errLeaseLost
	}
	now := h.s.now()
	if !h.renewed.IsZero() && now.Sub(h.renewed) < h.ttl/3 {
		return nil
	}
	err := h.s.renewJobLease(ctx, h.name, now, h.ttl)
	if errors.Is(err, errLeaseLost) {
		h.lost = true
	}
	if err != nil {
		return err
	}
	h.renewed = now
	return nil
}

// jobLeasePrefix starts the name of each background job's lease.
const jobLeasePrefix = "job/"

// releaseLeases gives up the job leases this process holds as it stops, so
// that a replica (or this one restarted) takes the jobs over at once
// instead of after the lease runs out: a lease renewed to expire now is
// free, and one another process holds is left alone.
func (s *Service) releaseLeases(names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range names {
		if _, err := s.store.TryLease(ctx, jobLeasePrefix+name, s.owner, s.now(), 0); err != nil {
			s.log.WarnContext(ctx, "job lease not released at shutdown; it runs out by itself", "job", name, "err", err)
		}
	}
}

// runJob runs fn once if this process holds (or takes) the job's lease,
// recovering a panic into a logged error.
func (s *Service) runJob(ctx context.Context, name string, ttl time.Duration, fn func(context.Context) error) {
	if ctx.Err() != nil {
		return
	}
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		held, err := s.store.TryLease(ctx, jobLeasePrefix+name, s.owner, s.now(), ttl)
		if err != nil || !held {
			return err
		}
		return fn(ctx)
	}()
	if err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "background job failed; it runs again later", "job", name, "err", err)
	}
}

// prune applies the retention.
func (s *Service) prune(ctx context.Context, j Jobs) error {
	now := s.now()
	c := linkd.PruneCutoffs{Deliveries: now.Add(-j.ReplayWindow)}
	if j.Retention > 0 {
		c.Sessions, c.Webhooks, c.LinkTokens = now.Add(-j.Retention), now.Add(-j.Retention), now.Add(-j.Retention)
	}
	res, err := s.store.Prune(ctx, c)
	if err != nil {
		return err
	}
	if res.Sessions+res.Webhooks+res.LinkTokens > 0 {
		s.log.InfoContext(ctx, "pruned old records", "sessions", res.Sessions, "webhooks", res.Webhooks,
			"link_tokens", res.LinkTokens, "retention", j.Retention)
	}
	return nil
}

// reseal re-seals access tokens sealed under an older master key, in
// batches, in one pass over the Items.
func (s *Service) reseal(ctx context.Context) error {
	total, err := linkd.ResealPass(ctx, s.store, resealBatch)
	if err != nil {
		return err
	}
	if total > 0 {
		s.log.InfoContext(ctx, "access tokens re-sealed with the current master key", "count", total)
	}
	return nil
}
