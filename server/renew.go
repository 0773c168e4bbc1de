package server

import (
	"context"
	"sync"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// maxRenewals bounds the remembered renewals; past it the memory starts
// afresh, which costs at most one more Plaid call per dead token.
const maxRenewals = 10000

// renewals remembers, per dead link token, the fresh token issued for it,
// so that every redirect a webview fires on a dead token (a burst of events
// and the exit) gets the same fresh token from one Plaid call, and no
// caller can turn resubmissions into Plaid calls.
type renewals struct {
	mu     sync.Mutex
	issued map[string]*linkdv1.LinkToken
	locks  keyedMutex
}

// renew returns the fresh link token for a dead one: the one issued before
// while it is still valid, else a new one from Plaid for the same user and
// mode. It returns the Plaid or store error when none can be issued.
func (s *Server) renew(ctx context.Context, tok *storagev1.StoredLinkToken) (*linkdv1.LinkToken, error) {
	r := &s.renewals
	unlock := r.locks.lock(tok.GetLinkToken())
	defer unlock()
	r.mu.Lock()
	fresh := r.issued[tok.GetLinkToken()]
	r.mu.Unlock()
	if fresh != nil && s.now().Before(fresh.GetExpiration().AsTime()) {
		return fresh, nil
	}
	fresh, err := s.renewLinkToken(ctx, tok)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.issued == nil || len(r.issued) >= maxRenewals {
		r.issued = make(map[string]*linkdv1.LinkToken)
	}
	r.issued[tok.GetLinkToken()] = fresh
	r.mu.Unlock()
	return fresh, nil
}
