package webhook

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/linkd/linkd"
)

// warnEvery is the least time between two log lines for one reason, so
// that a flood of forgeries costs a line every 10 s, not a line each.
const warnEvery = 10 * time.Second

// clipBytes is how much of an attacker-chosen value reaches the log.
const clipBytes = 64

// logRefusal logs a refused delivery, at most once per reason every
// warnEvery, with the number of refusals for that reason not logged since.
func (v *Verifier) logRefusal(ctx context.Context, err error, kid string) {
	var e *linkd.Error
	if !errors.As(err, &e) || e.Reason == ReasonKeyFetch {
		return // fetch logs its failure itself, with the cause
	}
	ok, suppressed := v.warn.allow(e.Reason, v.cfg.Now())
	if !ok {
		return
	}
	msg := "webhook refused"
	if e.Code == linkd.EUNAVAILABLE {
		msg = "webhook deferred; Plaid will retry it"
	}
	v.log.LogAttrs(ctx, slog.LevelWarn, msg,
		slog.String("reason", e.Reason), slog.String("detail", e.Message),
		slog.String("kid", clip(kid)), slog.Int("suppressed", suppressed))
}

// limiter allows one event per cause every `every`, and counts the rest.
// Causes are the Reason constants, so its maps stay small.
type limiter struct {
	every time.Duration

	mu      sync.Mutex
	last    map[string]time.Time
	dropped map[string]int
}

// allow reports whether an event of cause at now may be logged and, if so,
// how many were not since the last one that was.
func (l *limiter) allow(cause string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.dropped = map[string]time.Time{}, map[string]int{}
	}
	if last, seen := l.last[cause]; seen && now.Sub(last) < l.every {
		l.dropped[cause]++
		return false, 0
	}
	suppressed = l.dropped[cause]
	l.last[cause], l.dropped[cause] = now, 0
	return true, suppressed
}

// clip returns s cut to clipBytes on a character boundary, marked when cut.
func clip(s string) string {
	if len(s) <= clipBytes {
		return s
	}
	return strings.ToValidUTF8(s[:clipBytes], "") + "…"
}

// errorAttrs describes a key source error for the log: its code, clipped
// message and, from Plaid, the error code and request id.
func errorAttrs(err error) []slog.Attr {
	var e *linkd.Error
	if !errors.As(err, &e) {
		return []slog.Attr{slog.String("err", clip(err.Error()))}
	}
	attrs := []slog.Attr{slog.String("code", e.Code), slog.String("err", clip(e.Message))}
	if e.Plaid != nil {
		attrs = append(attrs, slog.String("plaid_error_code", e.Plaid.ErrorCode), slog.String("plaid_request_id", e.Plaid.RequestID))
	}
	return attrs
}
