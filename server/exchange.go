package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// persistTimeout bounds the work after Plaid has spent a public token. That
// work runs even when the caller has gone away: the exchange is billed and
// its access token must be stored.
const persistTimeout = 30 * time.Second

// accountsTimeout bounds the best-effort /accounts/get after an exchange,
// which only improves an Item already stored.
const accountsTimeout = 10 * time.Second

// exchange turns a public token into a stored Item exactly once per linkd
// process and store: a token already exchanged returns its Item again, and
// concurrent calls for one token wait for the first. connected, when the
// token came from a redirect, supplies the session and a fallback for the
// institution and accounts.
func (s *Server) exchange(ctx context.Context, publicToken, clientUserID string, connected *linkdv1.ConnectedResult) (*linkdv1.Item, error) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	unlock := s.exchanges.lock(publicToken)
	defer unlock()

	item, err := s.store.ItemForPublicToken(ctx, publicToken)
	switch linkd.ErrorCode(err) {
	case "":
		if item.GetClientUserId() != clientUserID {
			// What Plaid itself says of a spent token: nothing about whose.
			return nil, linkd.InvalidField("public_token", "public_token was already used")
		}
		return item, nil
	case linkd.ENOTFOUND:
	default:
		return nil, err
	}
	if err := s.checkDuplicate(ctx, clientUserID, connected); err != nil {
		return nil, err
	}

	earlier, err := s.store.BeginExchange(ctx, publicToken, clientUserID)
	if err != nil {
		return nil, err
	}
	ex, err := s.plaid.ExchangePublicToken(ctx, publicToken)
	if err != nil {
		return nil, s.exchangeFailed(ctx, publicToken, earlier, err)
	}
	// Plaid has spent the token and billed the Item: store it first, with
	// what Link reported, under a context of its own, so neither the
	// caller going away nor a slow /accounts/get can lose the access token.
	persistCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
	defer cancel()
	item = &linkdv1.Item{
		ItemId:       ex.ItemID,
		ClientUserId: clientUserID,
		Status:       linkdv1.ItemStatus_ITEM_STATUS_GOOD,
		CreatedAt:    timestamppb.New(s.now()),
	}
	if connected != nil {
		item.InstitutionId = connected.GetInstitutionId()
		item.InstitutionName = connected.GetInstitutionName()
		item.Accounts = connected.GetAccounts()
		item.LinkSessionId = connected.GetLinkSessionId()
	}
	if err := s.store.PutItem(persistCtx, item, ex.AccessToken, publicToken); err != nil {
		s.log.ErrorContext(ctx, "exchanged item not stored", "item_id", ex.ItemID, "err", err)
		return nil, err
	}
	s.log.InfoContext(ctx, "item linked", "item_id", item.ItemId, "client_user_id", clientUserID,
		"institution_id", item.InstitutionId, "plaid_request_id", ex.RequestID)
	return s.refreshAccounts(persistCtx, item, ex.AccessToken), nil
}

// refreshAccounts replaces an Item's institution and accounts with Plaid's
// authoritative view, or records the Item error Plaid answers with. It is
// best effort: on any failure the Item keeps what Link reported, and that
// Item is returned.
func (s *Server) refreshAccounts(ctx context.Context, item *linkdv1.Item, token linkd.AccessToken) *linkdv1.Item {
	ctx, cancel := context.WithTimeout(ctx, accountsTimeout)
	defer cancel()
	acc, err := s.plaid.GetAccounts(ctx, token)
	if err != nil {
		s.log.WarnContext(ctx, "accounts unavailable after exchange; keeping Link's", "item_id", item.GetItemId(), "err", err)
		if updated := s.noteItemError(ctx, item.GetItemId(), err); updated != nil {
			return updated
		}
		return item
	}
	updated, err := s.store.SetItemDetails(ctx, item.GetItemId(), acc.InstitutionID, acc.InstitutionName, acc.Accounts)
	if err != nil {
		s.log.WarnContext(ctx, "item details not updated after exchange", "item_id", item.GetItemId(), "err", err)
		return item
	}
	return updated
}

// exchangeFailed handles a failed exchange. Plaid spends a public token
// once, so linkd can never make two Items of it; what it must not do is
// hide that an Item may exist. When the outcome is unknown the mark made by
// BeginExchange stays and the caller hears so (UNAVAILABLE: retry). When a
// retry after an unknown outcome finds the token spent, the caller hears
// that the first attempt probably created an Item linkd never received.
// Any other failure is definite: the mark is cleared and the error returned.
func (s *Server) exchangeFailed(ctx context.Context, publicToken string, earlier bool, err error) error {
	var e *linkd.Error
	spent := errors.As(err, &e) && e.Plaid != nil && e.Plaid.ErrorCode == "INVALID_PUBLIC_TOKEN"
	switch {
	case errors.Is(err, linkd.ErrOutcomeUnknown):
		s.log.WarnContext(ctx, "exchange outcome unknown; kept as pending", "err", err)
		return fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE,
			"Plaid did not answer the exchange, so linkd cannot tell whether it happened; retry the same call: it will not create a second Item"), err)
	case earlier && spent:
		s.log.ErrorContext(ctx, "exchange retried after an unknown outcome finds the public token spent: Plaid likely created an Item linkd has no access token for", "err", err)
		return &linkd.Error{Code: linkd.EPRECONDITION, Field: "public_token", Plaid: e.Plaid,
			Message: "an earlier exchange of this public_token got no answer and Plaid now reports it spent: the Item was probably created at Plaid without linkd receiving it; open Link again for the user"}
	}
	if aerr := s.store.AbandonExchange(context.WithoutCancel(ctx), publicToken); aerr != nil {
		s.log.ErrorContext(ctx, "cannot clear a failed exchange's pending mark", "err", aerr)
	}
	return err
}

// Drain waits until no exchange is in progress, or ctx ends: an exchange
// goes on storing its Item after the caller (or the gRPC server) is gone,
// so the store must stay open until it is done. It returns ctx's error when
// exchanges were still running.
func (s *Server) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keyedMutex is a set of mutexes by key, each existing only while in use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu    sync.Mutex
	users int
}

// lock locks key and returns the function that unlocks it.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.users--
		if l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// Duplicate Item policies: which existing Items a new connection is
// compared with before its public token is exchanged.
const (
	DuplicatesPerUser  = "user" // the same user's Items (the default)
	DuplicatesAllUsers = "all"  // every user's Items
	DuplicatesOff      = "off"  // no check
)

// checkDuplicate refuses a connection that repeats an existing Item, as
// Plaid recommends checking before the exchange (so it is not billed twice):
// same institution_id and an account with the same name and mask, or the
// institution alone when either side has no account with both. It returns
// ECONFLICT with reason DUPLICATE_ITEM and the existing item_id. Without a
// connected result (a bare public token) there is nothing to compare.
func (s *Server) checkDuplicate(ctx context.Context, clientUserID string, connected *linkdv1.ConnectedResult) error {
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
	for _, old := range candidates {
		if old.GetInstitutionId() != connected.GetInstitutionId() || !sameAccounts(old.GetAccounts(), connected.GetAccounts()) {
			continue
		}
		if old.GetClientUserId() != clientUserID && !isService(ctx) {
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
	return nil
}

// sameAccounts reports whether two account lists share an account by name
// and mask, or, when either has no account with both, whether that cannot
// be told (and the institution decides).
func sameAccounts(a, b []*linkdv1.Account) bool {
	named := func(acc *linkdv1.Account) bool { return acc.GetName() != "" && acc.GetMask() != "" }
	if !slices.ContainsFunc(a, named) || !slices.ContainsFunc(b, named) {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if named(x) && x.GetName() == y.GetName() && x.GetMask() == y.GetMask() {
				return true
			}
		}
	}
	return false
}
