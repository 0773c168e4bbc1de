package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Reconcile: webhooks get lost (Plaid retries a few times, then gives up),
// and no webhook at all follows some changes, so linkd also asks Plaid.
// A background job walks every Item a page at a time (Store.ItemsAfter,
// the last item_id as its cursor) and, for each one:
//   - compares it with /item/get when it was not compared within the
//     reconcile interval, and applies what changed (linkd.ApplyItemState);
//   - then points it at linkd's configured webhook URL
//     (/item/webhook/update) when Plaid or linkd last knew another, so
//     that changing the URL moves existing Items, resumably (each move is
//     recorded on the Item); an Item whose link token named its own URL
//     (webhook_requested) stays where the app put it.
//
// Plaid calls are paced at a configured rate, the walk renews the job's
// lease as it goes (so that one replica walks at a time, across a shared
// Postgres) and records its position with the lease after each page, so
// that a replica taking the lease over resumes there rather than at the
// first Item (with frequent restarts, the Items at the end of a long walk
// would otherwise never be reached). A pass that found everything fresh
// sleeps until the first Item falls due again, so that idle passes cost
// no reads.

// Reconcile defaults.
const (
	// DefaultReconcileEvery is how often each Item is compared with
	// /item/get at most: once a day.
	DefaultReconcileEvery = 24 * time.Hour
	// DefaultReconcileRate caps the reconcile job's Plaid calls per second:
	// 5/s compares 432,000 Items a day, well under Plaid's per-client
	// /item/get limit.
	DefaultReconcileRate = 5.0
	// reconcilePage is how many Items one read of the walk takes.
	reconcilePage        = 100
	defaultReconcileTick = time.Minute
)

// ReconcileResult counts what one reconcile pass did.
type ReconcileResult struct {
	// Reconciled counts Items compared with /item/get, Moved Items pointed
	// at the configured webhook URL, Failed Items Plaid could not answer
	// for (tried again on a later pass).
	Reconciled, Moved, Failed int
}

// reconcileState is where this process's walk stands (the job's position
// is also recorded with its lease: reconcile).
type reconcileState struct {
	mu     sync.Mutex
	cursor string
	// next is when the next pass starts: when the first Item the last pass
	// saw falls due. Zero starts one at once.
	next time.Time
	// soonest is the earliest due time seen in the pass under way.
	soonest time.Time
	// partial is set when another process walked part of the pass under
	// way (it took the lease over meanwhile): soonest misses its Items.
	partial bool
}

// ReconcileItems walks every Item once, from where the last walk of this
// process stopped, comparing with /item/get the Items not compared within
// every (DefaultReconcileEvery when zero) and moving webhooks, without
// pacing or a lease (the job adds both). After a whole pass it does
// nothing until the first Item it saw falls due again. It stops at the
// first failure to reach the store or Plaid, to resume from there on the
// next call.
func (s *Service) ReconcileItems(ctx context.Context, every time.Duration) (ReconcileResult, error) {
	return s.reconcile(ctx, every, nil, "")
}

// reconcileLease is the reconcile job's lease, which also keeps its walk
// position.
const reconcileLease = jobLeasePrefix + "reconcile"

// reconcile is one pass of the walk; wait, when set, is called before each
// Plaid call and paces them (and renews the lease: its error stops the
// pass). With lease set, the walk starts from the position recorded with
// that lease (by this process or another) and records its own there after
// each page; losing the lease stops it (errLeaseLost).
func (s *Service) reconcile(ctx context.Context, every time.Duration, wait func(context.Context) error, lease string) (ReconcileResult, error) {
	if every <= 0 {
		every = DefaultReconcileEvery
	}
	st := &s.reconciling
	st.mu.Lock()
	defer st.mu.Unlock()
	var res ReconcileResult
	if s.now().Before(st.next) {
		return res, nil
	}
	if lease != "" {
		cursor, err := s.store.LeaseCursor(ctx, lease)
		if err != nil {
			return res, err
		}
		if cursor != st.cursor {
			// Another process walked meanwhile: the due times this one saw
			// are not the whole pass's.
			st.partial = true
		}
		st.cursor = cursor
	}
	if st.cursor == "" {
		st.partial, st.soonest = false, time.Time{}
	}
	for {
		page, err := s.store.ItemsAfter(ctx, st.cursor, reconcilePage)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			// The pass is over: the next starts when an Item falls due, or
			// at once when this process saw only part of the pass.
			next := st.soonest
			if st.partial {
				next = time.Time{}
			}
			st.cursor, st.next, st.soonest, st.partial = "", next, time.Time{}, false
			if res.Reconciled+res.Moved+res.Failed > 0 {
				s.log.InfoContext(ctx, "items reconciled with Plaid", "reconciled", res.Reconciled, "moved", res.Moved, "failed", res.Failed)
			}
			return res, s.saveReconcileCursor(ctx, lease, "")
		}
		for _, item := range page {
			if err := s.reconcileItem(ctx, item, every, wait, &res); err != nil {
				// Best effort: at worst the next walk redoes this page.
				if serr := s.saveReconcileCursor(ctx, lease, st.cursor); serr != nil && !errors.Is(serr, errLeaseLost) && ctx.Err() == nil {
					s.log.WarnContext(ctx, "reconcile position not recorded", "err", serr)
				}
				return res, err
			}
			st.cursor = item.GetItemId()
		}
		if err := s.saveReconcileCursor(ctx, lease, st.cursor); err != nil {
			return res, err
		}
	}
}

// saveReconcileCursor records the walk's position with lease (nothing
// when lease is ""); errLeaseLost when another process holds it now.
func (s *Service) saveReconcileCursor(ctx context.Context, lease, cursor string) error {
	if lease == "" {
		return nil
	}
	held, err := s.store.SetLeaseCursor(ctx, lease, s.owner, cursor)
	if err != nil {
		return err
	}
	if !held {
		return errLeaseLost
	}
	return nil
}

// reconcileItem compares one Item with /item/get when it is due, then
// moves its webhook to the configured URL when Plaid (or linkd) shows
// another. It returns an error only when the walk must stop (the store,
// or Plaid, cannot be reached); a definite Plaid answer about the Item is
// recorded on it and the walk goes on.
func (s *Service) reconcileItem(ctx context.Context, item *linkdv1.Item, every time.Duration, wait func(context.Context) error, res *ReconcileResult) error {
	id, url := item.GetItemId(), s.defaults.Webhook
	if item.GetWebhookRequested() {
		url = "" // the app chose its URL: never moved
	}
	due := item.GetReconciledAt() == nil || !s.now().Before(item.GetReconciledAt().AsTime().Add(every))
	if !due {
		s.noteDue(item.GetReconciledAt().AsTime().Add(every))
		if url == "" || item.GetWebhook() == url {
			return nil
		}
	}
	asked := s.now() // before any call to Plaid about this Item
	token, err := s.store.AccessToken(ctx, id)
	if linkd.ErrorCode(err) == linkd.ENOTFOUND {
		return nil // removed meanwhile
	} else if err != nil {
		return err
	}
	call := func(fn func() error) error {
		if wait != nil {
			if err := wait(ctx); err != nil {
				return err
			}
		}
		return fn()
	}
	// refused records a definite Plaid answer about the Item and lets
	// the walk go on; a failure to reach Plaid stops it.
	refused := func(what string, err error) error {
		if !definite(err) {
			return err
		}
		res.Failed++
		s.log.WarnContext(ctx, what+" refused by Plaid; the next pass tries again", "item_id", id, "err", err)
		s.noteItemError(ctx, id, err, asked)
		return nil
	}
	if due {
		s.noteDue(s.now().Add(every))
		updated, err := s.compareWithPlaid(ctx, item, token, call)
		if err != nil {
			if err := refused("reconcile", err); err != nil {
				return err
			}
			// Not asked again before the next interval: Plaid would
			// refuse the Item again.
			_, err = s.store.UpdateItem(ctx, id, stampReconciled(s.now()))
			if linkd.ErrorCode(err) == linkd.ENOTFOUND {
				err = nil
			}
			return err
		}
		res.Reconciled++
		item = updated
	}
	if url == "" || item.GetWebhook() == url {
		return nil
	}
	err = call(func() error {
		_, err := s.plaid.UpdateItemWebhook(ctx, token, url)
		return err
	})
	if err != nil {
		return refused("webhook move", err)
	}
	if _, err := s.store.UpdateItem(ctx, id, linkd.SetItemWebhook(url)); err != nil && linkd.ErrorCode(err) != linkd.ENOTFOUND {
		return err
	}
	res.Moved++
	s.log.InfoContext(ctx, "item webhook moved to the configured URL", "item_id", id)
	return nil
}

// compareWithPlaid reads the Item's state from /item/get (and, for a
// broken Item that /item/get shows without error, /accounts/get: its data
// must answer before it counts as repaired) and applies it, returning the
// Item as stored.
func (s *Service) compareWithPlaid(ctx context.Context, item *linkdv1.Item, token linkd.AccessToken, call func(func() error) error) (*linkdv1.Item, error) {
	var state linkd.ItemState
	readAt := s.now()
	err := call(func() (err error) {
		state, err = s.plaid.GetItem(ctx, token)
		return err
	})
	state.ReadAt, state.Version = readAt, linkd.VersionOf(item)
	if err == nil && state.ErrorCode == "" && needsUser(item.GetStatus()) {
		err = call(func() error {
			_, err := s.plaid.GetAccounts(ctx, token)
			var e *linkd.Error
			if errors.As(err, &e) && e.Plaid != nil {
				// Only an error about the Item is its state; a rate limit
				// or an outage says nothing of it and fails the check.
				if _, ok := linkd.ItemStatusFor(e.Plaid.ErrorType, e.Plaid.ErrorCode); ok {
					state.ErrorType, state.ErrorCode = e.Plaid.ErrorType, e.Plaid.ErrorCode
					return nil
				}
			}
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	before := item.GetStatus()
	updated, err := s.store.UpdateItem(ctx, item.GetItemId(), linkd.ApplyItemState(state, s.now()))
	if err != nil {
		return nil, err
	}
	if updated.GetStatus() != before {
		s.log.InfoContext(ctx, "item status from reconcile", "item_id", item.GetItemId(), "status", updated.GetStatus().String(), "error_code", updated.GetErrorCode())
	}
	return updated, nil
}

// stampReconciled returns an update function that only records that the
// Item was compared with Plaid at now.
func stampReconciled(now time.Time) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		item.ReconciledAt = timestamppb.New(now)
		return true, nil
	}
}

// noteDue keeps the earliest due time of the pass under way. The caller
// holds s.reconciling.mu.
func (s *Service) noteDue(at time.Time) {
	st := &s.reconciling
	if st.soonest.IsZero() || at.Before(st.soonest) {
		st.soonest = at
	}
}

// pacer returns a wait function letting through at most rate calls a
// second (none when rate is not positive), whose every call also renews
// the lease of job name: losing it (another process took it over) stops
// the walk.
func (s *Service) pacer(name string, rate float64, ttl time.Duration) func(context.Context) error {
	var next, renewed time.Time
	return func(ctx context.Context) error {
		// Renewed at a third of its life, not per call: a renewal is a
		// commit.
		if now := s.now(); renewed.IsZero() || now.Sub(renewed) >= ttl/3 {
			if err := s.renewJobLease(ctx, name, now, ttl); err != nil {
				return err
			}
			renewed = now
		}
		if rate <= 0 {
			return nil
		}
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		next = time.Now().Add(time.Duration(float64(time.Second) / rate))
		return nil
	}
}

// errLeaseLost stops a job whose lease another process took over.
var errLeaseLost = errors.New("job lease taken over by another process")

// renewJobLease renews the lease of job name until now+ttl: errLeaseLost
// when another process holds it.
func (s *Service) renewJobLease(ctx context.Context, name string, now time.Time, ttl time.Duration) error {
	held, err := s.store.TryLease(ctx, jobLeasePrefix+name, s.owner, now, ttl)
	if err != nil {
		return err
	}
	if !held {
		return errLeaseLost
	}
	return nil
}

// needsUser reports whether an Item's status is an error only the user
// (update mode) or Plaid can end.
func needsUser(st linkdv1.ItemStatus) bool {
	return st == linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED || st == linkdv1.ItemStatus_ITEM_STATUS_ERROR
}
