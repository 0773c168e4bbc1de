package server

import (
	"context"
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

// exchange turns a public token into a stored Item exactly once per linkd
// process and store: a token already exchanged returns its Item again, and
// concurrent calls for one token wait for the first. connected, when the
// token came from a redirect, supplies the session and a fallback for the
// institution and accounts.
func (s *Server) exchange(ctx context.Context, publicToken, clientUserID string, connected *linkdv1.ConnectedResult) (*linkdv1.Item, error) {
	unlock := s.exchanges.lock(publicToken)
	defer unlock()

	item, err := s.store.ItemForPublicToken(ctx, publicToken)
	switch linkd.ErrorCode(err) {
	case "":
		if item.GetClientUserId() != clientUserID {
			return nil, &linkd.Error{Code: linkd.ECONFLICT, Field: "public_token", Message: "public_token was already exchanged"}
		}
		return item, nil
	case linkd.ENOTFOUND:
	default:
		return nil, err
	}

	ex, err := s.plaid.ExchangePublicToken(ctx, publicToken)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
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
	// Plaid's view of the accounts is authoritative; without it the Item
	// keeps what Link reported, rather than losing the exchange.
	if acc, err := s.plaid.GetAccounts(ctx, ex.AccessToken); err != nil {
		s.log.WarnContext(ctx, "accounts unavailable after exchange; keeping Link's", "item_id", ex.ItemID, "err", err)
	} else {
		item.InstitutionId = or(acc.InstitutionID, item.InstitutionId)
		item.InstitutionName = or(acc.InstitutionName, item.InstitutionName)
		if len(acc.Accounts) > 0 {
			item.Accounts = acc.Accounts
		}
	}
	if err := s.store.PutItem(ctx, item, ex.AccessToken, publicToken); err != nil {
		s.log.ErrorContext(ctx, "exchanged item not stored", "item_id", ex.ItemID, "err", err)
		return nil, err
	}
	s.log.InfoContext(ctx, "item linked", "item_id", item.ItemId, "client_user_id", clientUserID,
		"institution_id", item.InstitutionId, "plaid_request_id", ex.RequestID)
	return item, nil
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
