package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// refreshTimeout bounds one refresh of an Item's accounts from Plaid.
const refreshTimeout = 10 * time.Second

// GetItem returns an Item, or ENOTFOUND.
func (s *Service) GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error) {
	return s.store.GetItem(ctx, itemID)
}

// ListItems returns a user's Items, oldest first, only those in one of
// statuses when any is given.
func (s *Service) ListItems(ctx context.Context, clientUserID string, statuses []linkdv1.ItemStatus) ([]*linkdv1.Item, error) {
	items, err := s.store.ListItems(ctx, clientUserID)
	if err != nil {
		return nil, err
	}
	if len(statuses) > 0 {
		items = slices.DeleteFunc(items, func(it *linkdv1.Item) bool { return !slices.Contains(statuses, it.GetStatus()) })
	}
	return items, nil
}

// RemoveItem removes the Item at Plaid, then from the store, and returns
// Plaid's request_id. An Item Plaid no longer knows is still removed here;
// any other Plaid error leaves it (and may update its status).
func (s *Service) RemoveItem(ctx context.Context, itemID string) (string, error) {
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return "", err
	}
	asked := s.now()
	requestID, err := s.plaid.RemoveItem(ctx, token)
	if err != nil {
		var e *linkd.Error
		if !errors.Is(err, linkd.ErrItemGone) || !errors.As(err, &e) {
			s.noteItemError(ctx, itemID, err, asked)
			return "", err
		}
		if e.Plaid != nil {
			requestID = e.Plaid.RequestID
		}
		s.log.WarnContext(ctx, "item already gone at Plaid; removing it here", "item_id", itemID)
	}
	if err := s.store.DeleteItem(ctx, itemID); err != nil {
		return "", err
	}
	s.log.InfoContext(ctx, "item removed", "item_id", itemID)
	return requestID, nil
}

// noteItemError moves an Item to the status a Plaid error about it means,
// and returns the Item so updated; nil when the error says nothing about
// the Item. askedAt is when linkd made the call that Plaid answered with
// err: a status the Item took since (a webhook) stands
// (SetItemStatusAsOf). It is best effort: callers go on with the Plaid
// error either way, so a failure here is only logged.
func (s *Service) noteItemError(ctx context.Context, itemID string, err error, askedAt time.Time) *linkdv1.Item {
	var e *linkd.Error
	if itemID == "" || !errors.As(err, &e) || e.Plaid == nil {
		return nil
	}
	st, ok := linkd.ItemStatusFor(e.Plaid.ErrorType, e.Plaid.ErrorCode)
	if !ok {
		return nil
	}
	item, err := s.store.UpdateItem(ctx, itemID, linkd.SetItemStatusAsOf(st, e.Plaid.ErrorCode, askedAt, s.now()))
	if err != nil {
		s.log.WarnContext(ctx, "item status not updated", "item_id", itemID, "err", err)
		return nil
	}
	s.log.InfoContext(ctx, "item status from Plaid", "item_id", itemID, "status", st.String(), "error_code", e.Plaid.ErrorCode)
	return item
}

// repaired handles a connected redirect of an update-mode session.
// Plaid's public token from update mode needs no exchange, no webhook
// follows a fixed pending expiry or disconnect, and a redirect proves
// nothing by itself (it may be a resubmission, or made up), so linkd asks
// Plaid: /link/token/get of tok (linkd's update-mode token for the Item)
// when the Item is pending a disconnect or flagged new_accounts_available,
// then /item/get, then /accounts/get when the Item has no error, and
// applies ConfirmUpdateMode. An Item error Plaid still reports stays; a
// pending expiry or disconnect clears only when Plaid shows the consent
// renewed (ConsentRenewed, DisconnectAverted), which a replayed or made-up
// redirect cannot show. A pending disconnect takes a consent past the
// disconnect time that did not move since linkd recorded it as renewed,
// and new_accounts_available clears, only when /link/token/get shows a
// session that went through since the notice (UpdateModeConfirmed), asked
// before /item/get so that its answer is from after the session: the
// redirect's word is not enough. The accounts become Plaid's, so that
// accounts added in update mode appear. A webhook applied while Plaid was
// asked makes linkd ask again (ErrStaleRead). When Plaid cannot answer
// now, EUNAVAILABLE asks the caller to resubmit (the redirect is
// recorded).
func (s *Service) repaired(ctx context.Context, tok *storagev1.StoredLinkToken) (*linkdv1.Item, error) {
	itemID := tok.GetItemId()
	asked := s.now() // before any call to Plaid
	item, err := s.store.GetItem(ctx, itemID)
	if err != nil {
		return nil, err
	}
	if item.GetClientUserId() != tok.GetClientUserId() {
		return nil, ErrItemNotFound()
	}
	if item.GetStatus() == linkdv1.ItemStatus_ITEM_STATUS_REVOKED {
		return item, nil // final: only removing it ends it
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return nil, err
	}
	unconfirmed := func(err error) (*linkdv1.Item, error) {
		s.log.WarnContext(ctx, "update-mode connected, but Plaid does not confirm it", "item_id", itemID, "err", err)
		if updated := s.noteItemError(ctx, itemID, err, asked); updated != nil {
			return updated, nil
		}
		// Plaid could not answer: the redirect is recorded and resubmitting
		// it is safe, so the caller retries rather than the repair being
		// lost (no webhook follows an update-mode repair).
		return nil, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE,
			"Plaid could not confirm the update-mode session now; resubmit the redirect"), err)
	}
	var sessions []linkd.LinkTokenSession
	if item.GetStatus() == linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT || item.GetNewAccountsAvailable() {
		// Only there does it matter (DisconnectAverted, the flag), so only
		// there does linkd spend the call. A flag raised after this read
		// stays: no session listed here answers it.
		lt, err := s.plaid.GetLinkToken(ctx, tok.GetLinkToken())
		switch {
		case err == nil:
			sessions = lt.Sessions
		case definite(err):
			// Plaid no longer answers for the token: nothing confirms
			// the session, and a renewed consent still tells.
			s.log.WarnContext(ctx, "Plaid does not report the update-mode session", "item_id", itemID, "err", err)
		default:
			return unconfirmed(err)
		}
	}
	began := linkd.VersionOf(item)
	seen := item
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// A webhook came meanwhile: the version to read against anew.
			if seen, err = s.store.GetItem(ctx, itemID); err != nil {
				return nil, err
			}
		}
		st, err := s.plaid.GetItem(ctx, token)
		if err != nil {
			return unconfirmed(err)
		}
		// As of when the confirmation began: a webhook since then (a
		// NEW_ACCOUNTS_AVAILABLE) is not answered by this session.
		st.ReadAt, st.Version = asked, began
		apply := linkd.ApplyItemState(st, s.now())
		if st.ErrorCode == "" {
			readAt := s.now()
			acc, err := s.plaid.GetAccounts(ctx, token)
			if err != nil {
				return unconfirmed(err)
			}
			acc.ReadAt, acc.Version = readAt, linkd.VersionOf(seen)
			apply = linkd.ConfirmUpdateMode(st, acc, sessions, s.now())
		}
		item, err = s.store.UpdateItem(ctx, itemID, apply)
		switch {
		case errors.Is(err, linkd.ErrStaleRead) && attempt < staleReadAttempts:
			continue // a webhook landed meanwhile: Plaid's answer now includes it
		case errors.Is(err, linkd.ErrStaleRead):
			return nil, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE,
				"webhooks about the Item kept arriving while linkd confirmed the update-mode session; resubmit the redirect"), err)
		case err != nil:
			return nil, err
		}
		break
	}
	s.log.InfoContext(ctx, "update-mode redirect checked with Plaid", "item_id", itemID, "status", item.GetStatus().String(),
		"new_accounts_available", item.GetNewAccountsAvailable())
	return item, nil
}

// refreshInline replaces a new Item's institution and accounts with
// Plaid's view, or records the Item error Plaid answers with. It is best
// effort: on any failure the Item is returned as it is.
func (s *Service) refreshInline(ctx context.Context, item *linkdv1.Item) *linkdv1.Item {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	asked := s.now()
	updated, err := s.refresh(ctx, item.GetItemId(), s.store.UpdateItem)
	if err != nil {
		s.log.WarnContext(ctx, "accounts unavailable after exchange; keeping what the Item has", "item_id", item.GetItemId(), "err", err)
		if u := s.noteItemError(ctx, item.GetItemId(), err, asked); u != nil {
			return u
		}
		return item
	}
	return updated
}

// staleReadAttempts bounds how often linkd reads an Item from Plaid again
// because a webhook about it was applied while it read (ErrStaleRead).
// Webhooks about one Item are rare; after the last attempt the caller
// gets ErrStaleRead (EUNAVAILABLE) and the refresh is deferred, or the
// redirect resubmitted.
const staleReadAttempts = 3

// refresh reads an Item's accounts and institution from Plaid and stores
// them through update (UpdateItem, or UpdateRefreshedItem to also end a
// queued refresh), reading again when a webhook was applied meanwhile
// (linkd.RefreshItem).
func (s *Service) refresh(ctx context.Context, itemID string, update func(context.Context, string, func(*linkdv1.Item) (bool, error)) (*linkdv1.Item, error)) (*linkdv1.Item, error) {
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		// The Item as of before the call, which tells whether a webhook
		// came meanwhile whatever the clocks of replicas (VersionOf).
		seen, err := s.store.GetItem(ctx, itemID)
		if err != nil {
			return nil, err
		}
		readAt := s.now()
		acc, err := s.plaid.GetAccounts(ctx, token)
		if err != nil {
			return nil, err
		}
		acc.ReadAt, acc.Version = readAt, linkd.VersionOf(seen)
		item, err := update(ctx, itemID, linkd.RefreshItem(acc))
		if errors.Is(err, linkd.ErrStaleRead) && attempt < staleReadAttempts {
			continue
		}
		return item, err
	}
}

// wakeRefresh tells the refresh job that an Item was queued.
func (s *Service) wakeRefresh() {
	select {
	case s.refreshNow <- struct{}{}:
	default:
	}
}

// refreshBatch is how many queued refreshes one pass takes.
const refreshBatch = 64

// refreshWorkers is how many queued refreshes of a pass run at once. One
// at a time, a refresh waited for its Plaid call and for a commit of its
// own: ~90 Items/s beside a c=64 burst of connected links and ~400/s at
// 1,000 links/s, so a steady stream of links outgrew the queue's drain for
// good. Four overlap their calls and share commits, and stay few against
// the request path's callers.
const refreshWorkers = 4

// RefreshQueued refreshes the Items whose refresh is due, from Plaid,
// and returns how many it refreshed. An Item error Plaid answers with is
// recorded and ends the refresh (the Item keeps what Link reported); a
// failure to reach Plaid defers it. It stops taking Items at the first
// store failure to defer one, and returns it.
func (s *Service) RefreshQueued(ctx context.Context) (int, error) {
	return s.refreshDue(ctx, nil)
}

// refreshDue is RefreshQueued under a job's lease: with lease set, each
// Item starts only once lease.hold says the lease covers it, so that a
// batch slower than the lease (Plaid timing out) never refreshes beside
// the process that took the lease over. It stops taking Items once the
// lease is lost, and returns errLeaseLost.
func (s *Service) refreshDue(ctx context.Context, lease *leaseHold) (int, error) {
	ids, err := s.store.DueItemRefreshes(ctx, s.now(), refreshBatch)
	if err != nil {
		return 0, err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		n        int
		firstErr error
	)
	next := make(chan string)
	for range min(refreshWorkers, len(ids)) {
		wg.Go(func() {
			for id := range next {
				refreshed, err := false, lease.hold(ctx)
				if err == nil {
					refreshed, err = s.refreshQueued(ctx, id)
				}
				mu.Lock()
				if refreshed {
					n++
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
	return n, firstErr
}

// refreshQueued runs one queued refresh: it reports whether the Item was
// refreshed, and the store's failure to defer it.
func (s *Service) refreshQueued(ctx context.Context, id string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	asked := s.now()
	_, err := s.refresh(rctx, id, s.store.UpdateRefreshedItem)
	cancel()
	switch {
	case err == nil:
		return true, nil
	case linkd.ErrorCode(err) == linkd.ENOTFOUND:
		// Removed meanwhile; DeleteItem dropped its queue entry.
	case s.noteItemError(ctx, id, err, asked) != nil:
		// A broken Item: the error is its status now; stop asking.
		if _, err := s.store.UpdateRefreshedItem(ctx, id, func(*linkdv1.Item) (bool, error) { return false, nil }); err != nil {
			s.log.WarnContext(ctx, "queued refresh not ended", "item_id", id, "err", err)
		}
	default:
		s.log.WarnContext(ctx, "item refresh deferred", "item_id", id, "err", err)
		if err := s.store.DeferItemRefresh(ctx, id, s.now().Add(time.Minute)); err != nil {
			return false, err
		}
	}
	return false, nil
}
