package service

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// persistRetryMax bounds the pause between attempts to store an Item
// Plaid has exchanged; attempts go on while the process lives.
const persistRetryMax = 2 * time.Second

// exchangeRequest is one exchange of a public token for a user.
type exchangeRequest struct {
	publicToken  string
	clientUserID string
	// connected, when the token came from a connected redirect, supplies
	// the session, institution and accounts; merge files the redirect in
	// its session in the transaction that stores the Item.
	connected *linkdv1.ConnectedResult
	merge     func(*linkdv1.LinkSession) (bool, error)
	// sessionKey is where the session is filed (see sessionKey).
	sessionKey string
	// webhookRequested is set when the link token named its own webhook
	// URL rather than taking linkd's default (Item.webhook_requested).
	webhookRequested bool
}

// keptExchange is an Item Plaid exchanged that is being stored. done
// closes when it is stored (item set) or can never be (err set).
type keptExchange struct {
	done chan struct{}
	item *linkdv1.Item
	err  error
}

// exchange turns a public token into a stored Item exactly once across
// every process sharing the store: a token already exchanged returns its
// Item again, a token another process is exchanging is waited for (as long
// as ctx allows), and an Item Plaid exchanged is stored however long that
// takes. It reports whether this call stored the Item (and so applied
// x.merge).
func (s *Service) exchange(ctx context.Context, x exchangeRequest) (item *linkdv1.Item, stored bool, err error) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	defer func() { s.metrics.Exchange(exchangeOutcome(stored, err)) }()
	unlock := s.exchanges.lock(x.publicToken)
	defer unlock()

	if k := s.keptFor(x.publicToken); k != nil {
		// An earlier call of this process has the access token and is
		// still storing it: wait for that, never for Plaid again.
		return s.awaitKept(ctx, k, x.clientUserID)
	}
	// A token exchanged already (a resubmission, or another replica's
	// call that won) is found by a read, with no write transaction.
	if item, err := s.store.ItemForPublicToken(ctx, x.publicToken); err == nil {
		if item.GetClientUserId() != x.clientUserID {
			return nil, false, linkd.InvalidField("public_token", "public_token was already used")
		}
		return item, false, nil
	} else if linkd.ErrorCode(err) != linkd.ENOTFOUND {
		return nil, false, err
	}
	if s.admit != nil {
		if err := s.admit(ctx); err != nil {
			return nil, false, err
		}
	}
	// Two public tokens of one bank login (two Link sessions finishing
	// together) must not both pass the duplicate check before either Item
	// is stored: a connection waits for any pending one it may repeat. In
	// this process it waits here, woken the moment that one leaves; the
	// claim carries its link to every other replica, and waits for
	// theirs (claim).
	unlockDup, err := s.lockDuplicateCheck(ctx, x.clientUserID, x.connected)
	if err != nil {
		return nil, false, err
	}
	claim, err := s.claim(ctx, x)
	if err != nil {
		unlockDup()
		return nil, false, err
	}
	if claim.Item != nil {
		unlockDup()
		if claim.Item.GetClientUserId() != x.clientUserID {
			// What Plaid itself says of a spent token: nothing about whose.
			return nil, false, linkd.InvalidField("public_token", "public_token was already used")
		}
		return claim.Item, false, nil
	}
	keeper := s.keepClaim(x.publicToken)
	// The claim (and its link) goes before this process's turn ends, so
	// that a connection let in here does not find it still pending.
	if err := s.checkDuplicate(ctx, x.clientUserID, x.connected); err != nil {
		keeper.stop()
		s.release(ctx, x.publicToken, false)
		unlockDup()
		return nil, false, err
	}
	ex, err := s.plaid.ExchangePublicToken(ctx, x.publicToken)
	if err != nil {
		keeper.stop()
		err = s.exchangeFailed(ctx, x.publicToken, claim.Earlier, err)
		unlockDup()
		return nil, false, err
	}
	// Plaid has spent the token and billed the Item: from here on the
	// access token is kept until it is stored, whatever becomes of the
	// caller.
	item = &linkdv1.Item{
		ItemId:       ex.ItemID,
		ClientUserId: x.clientUserID,
		Status:       linkdv1.ItemStatus_ITEM_STATUS_GOOD,
		CreatedAt:    timestamppb.New(s.now()),

		WebhookRequested: x.webhookRequested,
	}
	n := linkd.NewItem{Item: item, AccessToken: ex.AccessToken, PublicToken: x.publicToken}
	if c := x.connected; c != nil {
		item.InstitutionId = c.GetInstitutionId()
		item.InstitutionName = c.GetInstitutionName()
		item.Accounts = c.GetAccounts()
		item.LinkSessionId = c.GetLinkSessionId()
		n.Session = s.neverRefuse(x.merge)
		if x.sessionKey != item.LinkSessionId {
			n.SessionKey = x.sessionKey
		}
		n.RefreshAt = s.now()
	}
	k := s.persist(ctx, x.publicToken, n, keeper, unlockDup)
	item, _, err = s.awaitKept(ctx, k, x.clientUserID)
	if err != nil {
		return nil, false, err
	}
	s.log.InfoContext(ctx, "item linked", "item_id", item.GetItemId(), "client_user_id", x.clientUserID,
		"institution_id", item.GetInstitutionId())
	if x.connected != nil {
		s.wakeRefresh()
	}
	return item, true, nil
}

// claim takes the exchange claim on x's public token, waiting while
// another process holds it, or while another public token's claim holds a
// link that x's connection repeats (pendingLink): with replicas, a link
// of the same accounts being exchanged elsewhere, whose Item the duplicate
// check must see. It polls the store, backing off from 10 ms to 250 ms
// and never past the other claim's expiry, so that a claim its crashed
// holder left behind holds nobody longer than its TTL. When ctx ends
// first (a little before its deadline: answerInTime) it returns
// EUNAVAILABLE: the exchange is in progress and a retry will find its
// outcome (nothing was exchanged for x).
func (s *Service) claim(ctx context.Context, x exchangeRequest) (linkd.ClaimResult, error) {
	link := s.pendingLink(x.clientUserID, x.connected)
	var waitCtx context.Context // made at the first wait: most claims have none
	wait := 10 * time.Millisecond
	for {
		res, err := s.store.ClaimExchange(ctx, linkd.ExchangeClaim{
			PublicToken: x.publicToken, ClientUserID: x.clientUserID,
			Owner: s.owner, Now: s.now(), TTL: s.claimTTL, Link: link,
		})
		switch {
		case linkd.ErrorCode(err) == linkd.ECONFLICT:
			if _, uerr := s.store.ItemForPublicToken(ctx, x.publicToken); uerr == nil {
				// Spent on another user's Item: what Plaid itself says
				// of a spent token, nothing about whose.
				return linkd.ClaimResult{}, linkd.InvalidField("public_token", "public_token was already used")
			}
			return linkd.ClaimResult{}, err
		case err != nil:
			return linkd.ClaimResult{}, err
		case res.Item != nil || res.Claimed:
			return res, nil
		}
		if waitCtx == nil {
			var cancel context.CancelFunc
			waitCtx, cancel = answerInTime(ctx)
			defer cancel()
		}
		pause := min(wait, max(time.Until(res.HeldUntil), time.Millisecond))
		t := time.NewTimer(pause)
		select {
		case <-waitCtx.Done():
			t.Stop()
			if res.Repeats {
				return linkd.ClaimResult{}, errLinkPending
			}
			return linkd.ClaimResult{}, linkd.Errorf(linkd.EUNAVAILABLE,
				"this public_token is being exchanged by another request; retry the same call to get its Item")
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// claimKeeper renews an exchange claim until stopped. It runs on a timer,
// not a goroutine of its own: nearly every claim is stopped long before
// its first renewal is due, and a goroutine per link, started, parked and
// woken again to end, was three more turns on a busy processor's run
// queue for every connected link.
type claimKeeper struct {
	cancel context.CancelFunc // ends a renewal in flight
	mu     sync.Mutex         // held by a renewal while it runs
	done   bool               // stopped: no renewal runs again
	timer  *time.Timer
}

// keepClaim renews this process's claim on publicToken at a third of its
// TTL until stop, so that no other process takes over an exchange whose
// holder is alive (and would then hear from Plaid that the token is spent).
func (s *Service) keepClaim(publicToken string) *claimKeeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &claimKeeper{cancel: cancel}
	every := s.claimTTL / 3
	k.mu.Lock()
	defer k.mu.Unlock()
	k.timer = time.AfterFunc(every, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.done {
			return
		}
		err := s.store.RenewExchangeClaim(ctx, publicToken, s.owner, s.now(), s.claimTTL)
		switch {
		case err == nil || ctx.Err() != nil:
		case linkd.ErrorCode(err) == linkd.ECONFLICT:
			// Stored a moment ago (the claim went with it), or
			// taken over after this process stalled past the TTL.
			s.log.DebugContext(ctx, "exchange claim no longer held", "err", err)
		default:
			s.log.WarnContext(ctx, "exchange claim not renewed", "err", err)
		}
		if ctx.Err() == nil {
			k.timer.Reset(every)
		}
	})
	return k
}

// stop ends the renewals; once it returns, none runs and none will.
func (k *claimKeeper) stop() {
	k.cancel()
	k.mu.Lock()
	k.done = true
	k.timer.Stop()
	k.mu.Unlock()
}

// persist stores n in the background, retrying while the store fails, and
// returns its kept exchange. keeper renews the claim meanwhile; stored
// runs once the store has answered for good.
func (s *Service) persist(ctx context.Context, publicToken string, n linkd.NewItem, keeper *claimKeeper, stored func()) *keptExchange {
	k := &keptExchange{done: make(chan struct{})}
	s.keptMu.Lock()
	s.kept[publicToken] = k
	s.keptMu.Unlock()
	s.inflight.Add(1)
	bg := context.WithoutCancel(ctx)
	go func() {
		defer s.inflight.Done()
		defer stored()
		defer keeper.stop()
		wait := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			item, err := s.store.PutItem(bg, n)
			if err == nil {
				k.item = item
				break
			}
			if code := linkd.ErrorCode(err); code == linkd.ECONFLICT || code == linkd.EINVALID {
				// Stored already (a retry inside the store), or refused
				// for good: the Item by its token says which.
				if existing, gerr := s.store.ItemForPublicToken(bg, publicToken); gerr == nil {
					k.item = existing
					break
				}
				s.log.ErrorContext(bg, "exchanged item refused by the store", "item_id", n.Item.GetItemId(), "err", err)
				k.err = err
				break
			}
			s.log.ErrorContext(bg, "exchanged item not stored yet; retrying", "item_id", n.Item.GetItemId(), "attempt", attempt, "err", err)
			time.Sleep(rand.N(wait) + wait/2)
			wait = min(2*wait, persistRetryMax)
		}
		s.keptMu.Lock()
		delete(s.kept, publicToken)
		s.keptMu.Unlock()
		close(k.done)
	}()
	return k
}

// keptFor returns the kept exchange of publicToken, or nil.
func (s *Service) keptFor(publicToken string) *keptExchange {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	return s.kept[publicToken]
}

// awaitKept waits for a kept exchange to be stored, as long as ctx lets
// it; then the caller hears EUNAVAILABLE and a retry finds the Item. It
// stops a little before ctx's deadline, so that the answer reaches the
// caller before the caller gives up on it.
func (s *Service) awaitKept(ctx context.Context, k *keptExchange, clientUserID string) (*linkdv1.Item, bool, error) {
	ctx, cancel := answerInTime(ctx)
	defer cancel()
	select {
	case <-k.done:
	case <-ctx.Done():
		return nil, false, linkd.Errorf(linkd.EUNAVAILABLE,
			"Plaid exchanged the public_token and linkd is still storing the Item; retry the same call to get it")
	}
	if k.err != nil {
		return nil, false, k.err
	}
	if k.item.GetClientUserId() != clientUserID {
		return nil, false, linkd.InvalidField("public_token", "public_token was already used")
	}
	return k.item, false, nil
}

// answerInTime returns ctx ending a little before its deadline (250 ms,
// or a tenth of what is left when that is less), for a wait whose
// UNAVAILABLE must reach the caller before the caller gives up on it.
func answerInTime(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	margin := min(250*time.Millisecond, time.Until(deadline)/10)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// neverRefuse wraps a session update so that it can never refuse the
// transaction storing an exchanged Item: the Item exists at Plaid and its
// token must be kept; a session that cannot take the redirect stays as it
// was.
func (s *Service) neverRefuse(merge func(*linkdv1.LinkSession) (bool, error)) func(*linkdv1.LinkSession) (bool, error) {
	if merge == nil {
		return nil
	}
	return func(sess *linkdv1.LinkSession) (bool, error) {
		changed, err := merge(sess)
		if err != nil {
			return false, nil
		}
		return changed, nil
	}
}

// release ends this process's claim on publicToken; outcomeUnknown keeps
// the mark for the next claimant.
func (s *Service) release(ctx context.Context, publicToken string, outcomeUnknown bool) {
	if err := s.store.ReleaseExchangeClaim(context.WithoutCancel(ctx), publicToken, s.owner, outcomeUnknown); err != nil {
		s.log.ErrorContext(ctx, "cannot release an exchange claim", "err", err)
	}
}

// exchangeFailed handles a failed exchange. Plaid spends a public token
// once, so linkd can never make two Items of it; what it must not do is
// hide that an Item may exist. When the outcome is unknown the mark stays
// and the caller hears so (UNAVAILABLE: retry). When a retry after an
// unknown outcome finds the token spent, the caller hears that the first
// attempt probably created an Item linkd never received. Any other
// failure is definite: the mark is removed and the error returned.
func (s *Service) exchangeFailed(ctx context.Context, publicToken string, earlier bool, err error) error {
	switch {
	case errors.Is(err, linkd.ErrOutcomeUnknown):
		s.release(ctx, publicToken, true)
		s.log.WarnContext(ctx, "exchange outcome unknown; kept as pending", "err", err)
		return fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE,
			"Plaid did not answer the exchange, so linkd cannot tell whether it happened; retry the same call: it will not create a second Item"), err)
	case earlier && errors.Is(err, linkd.ErrPublicTokenSpent):
		s.release(ctx, publicToken, true)
		s.log.ErrorContext(ctx, "exchange retried after an unknown outcome finds the public token spent: Plaid likely created an Item linkd has no access token for", "err", err)
		var e *linkd.Error
		errors.As(err, &e)
		return &linkd.Error{Code: linkd.EPRECONDITION, Field: "public_token", Plaid: e.Plaid,
			Message: "an earlier exchange of this public_token got no answer and Plaid now reports it spent: the Item was probably created at Plaid without linkd receiving it; open Link again for the user"}
	}
	s.release(ctx, publicToken, false)
	return err
}

// errLinkPending answers a connection that waited for a pending link it
// repeats until its caller's deadline: nothing was exchanged.
var errLinkPending = linkd.Errorf(linkd.EUNAVAILABLE, "a link of the same accounts is being exchanged; retry to learn whether this one is a duplicate")

// pendingLink is the link an exchange claim carries for connected, or nil
// when there is nothing to compare (no institution, or no duplicate
// check).
func (s *Service) pendingLink(clientUserID string, connected *linkdv1.ConnectedResult) *linkd.PendingLink {
	if connected.GetInstitutionId() == "" || s.duplicates == DuplicatesOff {
		return nil
	}
	return &linkd.PendingLink{InstitutionID: connected.GetInstitutionId(), Accounts: connected.GetAccounts(),
		AllUsers: s.duplicates == DuplicatesAllUsers}
}

// lockDuplicateCheck waits, as long as ctx allows, until no connection in
// this process that connected repeats (linkd.PendingDuplicateOf, as the
// store's claims judge pending links) is between its check and its stored
// Item, and returns the function that ends connected's own turn there.
// With nothing to compare it waits for nothing. When ctx ends first it
// returns EUNAVAILABLE: nothing was exchanged.
func (s *Service) lockDuplicateCheck(ctx context.Context, clientUserID string, connected *linkdv1.ConnectedResult) (func(), error) {
	if connected.GetInstitutionId() == "" || s.duplicates == DuplicatesOff {
		return func() {}, nil
	}
	item := &linkdv1.Item{ClientUserId: clientUserID, InstitutionId: connected.GetInstitutionId(), Accounts: connected.GetAccounts()}
	leave, ok := s.pending.enter(ctx, item, s.duplicates == DuplicatesAllUsers)
	if !ok {
		return nil, errLinkPending
	}
	return leave, nil
}

// pendingLinks are the connections between their duplicate check and
// their stored Item in this process, by institution_id.
type pendingLinks struct {
	mu     sync.Mutex
	byInst map[string][]*pendingLink
}

// pendingLink is one connection in pendingLinks: what DuplicateOf compares
// of it, and a channel closed when it leaves.
type pendingLink struct {
	item *linkdv1.Item
	done chan struct{}
}

// enter waits, as long as ctx allows, until no pending connection is one
// that item repeats as linkd.PendingDuplicateOf judges (of item's user
// only unless allUsers), then registers item and returns the function
// that removes it. It reports false when ctx ends first, or a little
// before its deadline (answerInTime).
func (p *pendingLinks) enter(ctx context.Context, item *linkdv1.Item, allUsers bool) (leave func(), ok bool) {
	inst := item.GetInstitutionId()
	var waitCtx context.Context // made at the first wait: most connections have none
	for {
		p.mu.Lock()
		var candidates []*linkdv1.Item
		var links []*pendingLink
		for _, l := range p.byInst[inst] {
			if allUsers || l.item.GetClientUserId() == item.GetClientUserId() {
				candidates, links = append(candidates, l.item), append(links, l)
			}
		}
		if old := linkd.PendingDuplicateOf(candidates, item.GetClientUserId(), inst, item.GetAccounts(), allUsers); old != nil {
			wait := links[slices.Index(candidates, old)].done
			p.mu.Unlock()
			if waitCtx == nil {
				var cancel context.CancelFunc
				waitCtx, cancel = answerInTime(ctx)
				defer cancel()
			}
			select {
			case <-wait:
				continue
			case <-waitCtx.Done():
				return nil, false
			}
		}
		if p.byInst == nil {
			p.byInst = make(map[string][]*pendingLink)
		}
		me := &pendingLink{item: item, done: make(chan struct{})}
		p.byInst[inst] = append(p.byInst[inst], me)
		p.mu.Unlock()
		return func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			rest := slices.DeleteFunc(p.byInst[inst], func(l *pendingLink) bool { return l == me })
			if len(rest) == 0 {
				delete(p.byInst, inst)
			} else {
				p.byInst[inst] = rest
			}
			close(me.done)
		}, true
	}
}

// checkDuplicate refuses a connection that repeats an existing Item, as
// Plaid recommends checking before the exchange (so it is not billed
// twice), by linkd.DuplicateOf. It returns ECONFLICT with reason
// DUPLICATE_ITEM and, unless the Item is another user's and the caller
// an end user, its item_id. Without a connected result (a bare public
// token) there is nothing to compare.
func (s *Service) checkDuplicate(ctx context.Context, clientUserID string, connected *linkdv1.ConnectedResult) error {
	if connected == nil || connected.GetInstitutionId() == "" || s.duplicates == DuplicatesOff {
		return nil
	}
	var candidates []*linkdv1.Item
	var err error
	if s.duplicates == DuplicatesAllUsers {
		candidates, err = s.store.ItemsAtInstitution(ctx, connected.GetInstitutionId())
	} else {
		candidates, err = s.store.ListItems(ctx, clientUserID)
	}
	if err != nil {
		return err
	}
	old := linkd.DuplicateOf(candidates, connected.GetInstitutionId(), connected.GetAccounts())
	if old == nil {
		return nil
	}
	if c, _ := linkd.CallerFrom(ctx); old.GetClientUserId() != clientUserID && !c.Service {
		// Another user's Item: an end user learns that the account is
		// linked, never which Item or whose.
		return &linkd.Error{Code: linkd.ECONFLICT, Reason: linkd.ReasonDuplicateItem,
			Message: "this institution and account are already linked by another user"}
	}
	return &linkd.Error{
		Code:     linkd.ECONFLICT,
		Message:  "this institution and account are already linked: item " + old.GetItemId(),
		Reason:   linkd.ReasonDuplicateItem,
		Metadata: map[string]string{linkd.MetadataItemID: old.GetItemId()},
	}
}

// ExchangePublicToken exchanges a bare public token (no redirect to take
// accounts from) into a stored Item, and returns it with Plaid's accounts;
// a token already exchanged returns its Item again.
func (s *Service) ExchangePublicToken(ctx context.Context, publicToken, clientUserID string) (*linkdv1.Item, error) {
	item, stored, err := s.exchange(ctx, exchangeRequest{publicToken: publicToken, clientUserID: clientUserID})
	if err != nil || !stored {
		return item, err
	}
	return s.refreshInline(ctx, item), nil
}

// exchangeOutcome names the outcome of one exchange for Metrics.
func exchangeOutcome(stored bool, err error) string {
	var e *linkd.Error
	errors.As(err, &e)
	switch {
	case err == nil && stored:
		return ExchangeCreated
	case err == nil:
		return ExchangeRepeat
	case e != nil && e.Reason == "DUPLICATE_ITEM":
		return ExchangeDuplicate
	case errors.Is(err, linkd.ErrPublicTokenSpent), e != nil && e.Code == linkd.EINVALID && e.Field == "public_token":
		return ExchangeSpent
	case errors.Is(err, linkd.ErrOutcomeUnknown), e != nil && e.Code == linkd.EUNAVAILABLE:
		return ExchangeUnknown
	}
	return ExchangeError
}
