package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/redirect"
)

// plaidMethods are the methods that call Plaid (and so spend linkd's Plaid
// quota and, for exchanges, money) on an end user's word: each end user
// may call them at most at RateLimit's pace.
var plaidMethods = map[string]bool{
	linkdv1.LinkService_CreateLinkToken_FullMethodName:          true,
	linkdv1.LinkService_ExchangePublicToken_FullMethodName:      true,
	linkdv1.LinkService_RemoveItem_FullMethodName:               true,
	linkdv1.LinkService_CreateSandboxPublicToken_FullMethodName: true,
	// /link/token/get on every call, and a whole emulated Link session.
	linkdv1.LinkService_GetLinkToken_FullMethodName:               true,
	linkdv1.LinkService_CompleteSandboxLinkSession_FullMethodName: true,
}

// RateLimit is a token bucket: Burst calls at once, then PerSecond.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// DefaultUserRateLimit bounds each end user's calls of the methods that
// call Plaid: far above what one person linking a bank needs.
var DefaultUserRateLimit = RateLimit{PerSecond: 1, Burst: 20}

// maxBuckets bounds the users remembered; past it, full buckets are
// forgotten (a forgotten user starts with a full bucket, as it would).
const maxBuckets = 100_000

// userLimiter keeps one bucket per end user.
type userLimiter struct {
	limit   RateLimit
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newUserLimiter(limit RateLimit, now func() time.Time) *userLimiter {
	return &userLimiter{limit: limit, now: now, buckets: map[string]*bucket{}}
}

// take takes one call from user's bucket, or returns how long until one is
// there.
func (l *userLimiter) take(user string) (ok bool, wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[user]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.forgetFull(now)
		}
		b = &bucket{tokens: float64(l.limit.Burst), at: now}
		l.buckets[user] = b
	}
	b.tokens = min(float64(l.limit.Burst), b.tokens+now.Sub(b.at).Seconds()*l.limit.PerSecond)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.limit.PerSecond * float64(time.Second))
}

// forgetFull drops the buckets that have refilled by now.
func (l *userLimiter) forgetFull(now time.Time) {
	for u, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.limit.PerSecond >= float64(l.limit.Burst) {
			delete(l.buckets, u)
		}
	}
}

// rateLimitUnary refuses an end user's call of a method that calls Plaid
// beyond the user's bucket, with RESOURCE_EXHAUSTED saying the limit and
// when to retry. Services (API keys) are not limited here: they act for
// all their users. Each replica keeps its own buckets.
func rateLimitUnary(l *userLimiter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if l == nil || !plaidMethods[info.FullMethod] && info.FullMethod != linkdv1.LinkService_SubmitRedirect_FullMethodName {
			return next(ctx, req)
		}
		c, ok := linkd.CallerFrom(ctx)
		if !ok || c.Service {
			return next(ctx, req)
		}
		if sub, isSubmit := req.(*linkdv1.SubmitRedirectRequest); isSubmit && !redirectCallsPlaid(sub.GetUrl()) {
			return next(ctx, req)
		}
		if ok, wait := l.take(c.UserID); !ok {
			return nil, &linkd.Error{Code: linkd.ERATELIMIT, RetryAfter: wait,
				Message: fmt.Sprintf("rate limit: an end user may call the methods that reach Plaid %g times a second (bursts of %d); retry later", l.limit.PerSecond, l.limit.Burst)}
		}
		return next(ctx, req)
	}
}

// redirectCallsPlaid reports whether submitting the redirect url makes
// linkd call Plaid on the end user's word: a connected redirect (an
// exchange, or an update-mode session's checks) and an exit or event
// reporting INVALID_LINK_TOKEN (linkd.RenewsLinkToken), answered with a
// fresh link token made at Plaid, whose own such redirect makes another.
// Other events and exits call nobody (a redirect against an expired token
// renews it once, a link token the user made under this limit). A URL
// that does not parse is refused by the handler.
func redirectCallsPlaid(url string) bool {
	r, err := redirect.Parse(url)
	if err != nil {
		return false
	}
	return r.GetConnected() != nil || linkd.RenewsLinkToken(r)
}
