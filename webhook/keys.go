package webhook

import (
	"container/list"
	"context"
	"log/slog"
	"time"

	"github.com/linkd/linkd"
)

// fetchTimeout bounds one key fetch, whoever waits for it.
const fetchTimeout = 10 * time.Second

// refreshRetry is the least time between two refetches of a known kid, so
// that a failing refetch is not retried on every delivery.
const refreshRetry = time.Minute

// cachedKey is a key Plaid vouched for, and when to fetch it again.
type cachedKey struct {
	key       linkd.WebhookKey
	refreshAt time.Time
}

// flight is one fetch of a kid's key, which every delivery naming that kid
// meanwhile waits for.
type flight struct {
	done chan struct{}
	key  linkd.WebhookKey
	err  error // nil, or the *linkd.Error a waiting delivery gets
}

// keyFor returns the key for kid: the cached one, or else one fetched
// within the budget. It returns EUNAUTHORIZED when Plaid disowns kid (now
// or within UnknownKidTTL), EUNAVAILABLE when the budget is spent or the
// key source fails. A failed refetch of a cached key returns the cached
// key.
func (v *Verifier) keyFor(ctx context.Context, kid string) (linkd.WebhookKey, error) {
	now := v.cfg.Now()
	v.mu.Lock()
	cached, known := v.keys[kid]
	var old linkd.WebhookKey
	if known {
		old = cached.key
		if now.Before(cached.refreshAt) {
			v.mu.Unlock()
			return old, nil
		}
	} else if v.unknown.contains(kid, now) {
		v.mu.Unlock()
		return linkd.WebhookKey{}, refused(ReasonKeyUnknown, "Plaid does not know the kid")
	}
	f, joined := v.flights[kid]
	if !joined {
		if known {
			// Refetches have their own budget, one a minute per known kid:
			// they never draw on, or wait for, the budget forgeries spend.
			cached.refreshAt = now.Add(refreshRetry)
		} else if !v.budget.take(now) {
			v.mu.Unlock()
			return linkd.WebhookKey{}, unavailable(ReasonKeyDeferred, "too many new key ids")
		}
		f = &flight{done: make(chan struct{})}
		v.flights[kid] = f
	}
	v.mu.Unlock()

	if !joined {
		// In its own goroutine, so that this delivery too can stop waiting
		// when its context ends while the others still get the answer.
		go v.fetch(ctx, kid, f)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		if known {
			return old, nil
		}
		return linkd.WebhookKey{}, unavailable(ReasonKeyFetch, "gave up waiting for the key")
	}
	if known && f.err != nil && linkd.ErrorCode(f.err) == linkd.EUNAVAILABLE {
		return old, nil // Plaid vouched for it; a failed refetch does not undo that
	}
	return f.key, f.err
}

// fetch runs flight f for kid and records its outcome. It does not stop
// when ctx does, other deliveries wait for the same answer, but after
// fetchTimeout.
func (v *Verifier) fetch(ctx context.Context, kid string, f *flight) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	f.err = unavailable(ReasonKeyFetch, "the key source failed") // until it answers; also if it panics
	defer func() {
		// This goroutine is no handler's: net/http would not recover a
		// panicking key source here, and the whole process would stop.
		if r := recover(); r != nil {
			v.log.LogAttrs(ctx, slog.LevelError, "webhook key source panicked", slog.String("kid", clip(kid)), slog.Any("panic", r))
		}
		v.mu.Lock()
		delete(v.flights, kid)
		v.mu.Unlock()
		close(f.done)
	}()
	k, err := v.cfg.Keys(fctx, kid)

	now := v.cfg.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	switch code := linkd.ErrorCode(err); {
	case err == nil && k.KeyID == kid:
		v.keys[kid] = &cachedKey{key: k, refreshAt: now.Add(v.cfg.KeyRefresh)}
		f.key, f.err = k, nil
	case err == nil:
		// Not cached, so that only Plaid's own kids fill v.keys; the
		// caller's checkKey refuses it.
		delete(v.keys, kid)
		v.unknown.add(kid, now.Add(v.cfg.UnknownKidTTL))
		f.key, f.err = k, nil
	case code == linkd.EINVALID || code == linkd.ENOTFOUND:
		delete(v.keys, kid)
		v.unknown.add(kid, now.Add(v.cfg.UnknownKidTTL))
		f.err = refused(ReasonKeyUnknown, "Plaid does not know the kid")
	default:
		if ok, suppressed := v.warn.allow(ReasonKeyFetch, now); ok {
			attrs := append(errorAttrs(err), slog.String("kid", clip(kid)), slog.Int("suppressed", suppressed))
			v.log.LogAttrs(ctx, slog.LevelError, "webhook key fetch failed", attrs...)
		}
	}
}

// unknownKids remembers kids Plaid disowned, until a deadline each; when
// full, the oldest entry goes.
type unknownKids struct {
	max   int
	order *list.List // of *unknownKid, newest first
	byKid map[string]*list.Element
}

type unknownKid struct {
	kid   string
	until time.Time
}

func newUnknownKids(max int) *unknownKids {
	return &unknownKids{max: max, order: list.New(), byKid: map[string]*list.Element{}}
}

// add remembers kid as unknown until until.
func (u *unknownKids) add(kid string, until time.Time) {
	if e, ok := u.byKid[kid]; ok {
		e.Value.(*unknownKid).until = until
		u.order.MoveToFront(e)
		return
	}
	u.byKid[kid] = u.order.PushFront(&unknownKid{kid: kid, until: until})
	for u.order.Len() > u.max {
		u.remove(u.order.Back())
	}
}

// contains reports whether kid is remembered as unknown at now.
func (u *unknownKids) contains(kid string, now time.Time) bool {
	e, ok := u.byKid[kid]
	if !ok {
		return false
	}
	if !now.Before(e.Value.(*unknownKid).until) {
		u.remove(e)
		return false
	}
	return true
}

func (u *unknownKids) remove(e *list.Element) {
	delete(u.byKid, e.Value.(*unknownKid).kid)
	u.order.Remove(e)
}

// bucket is a token bucket holding at most perMinute tokens, refilled at
// perMinute a minute; it starts full.
type bucket struct {
	perMinute float64
	tokens    float64
	last      time.Time
}

// take takes a token at now, and reports whether there was one.
func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.perMinute
	} else if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.perMinute, b.tokens+elapsed.Minutes()*b.perMinute)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
