package plaid

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	plaidgo "github.com/plaid/plaid-go/v42/plaid"

	"github.com/linkd/linkd"
)

// Retry defaults: four attempts spread over about a second and a half at
// most, well inside a typical caller deadline.
const (
	DefaultMaxAttempts = 4
	retryBase          = 100 * time.Millisecond
	retryCap           = time.Second
)

// safety says whether a Plaid call may be sent again after Plaid may have
// acted on it.
type safety bool

const (
	// repeatable calls read, or create something harmless (a link token, a
	// sandbox public token), or are idempotent (removing a removed Item
	// answers ITEM_NOT_FOUND, which linkd treats as removed).
	repeatable safety = true
	// once calls spend something: /item/public_token/exchange. They are sent
	// again only when Plaid surely did not act: the connection was refused,
	// or Plaid refused the request for its rate limit.
	once safety = false
)

// do sends one Plaid call, retrying with exponential backoff and full
// jitter while the failure is retryable for the call's safety, attempts
// remain, and the caller's deadline leaves room for the wait. It returns
// nil or the last failure converted (see convert). Each attempt has
// c.timeout at most, from sending the request to reading the whole answer
// (plaid-go reads it before send returns). send must return plaid-go's
// error unwrapped.
func (c *Client) do(ctx context.Context, op string, s safety, secrets []string, send func(context.Context) (*http.Response, error)) error {
	var lastResp *http.Response
	var lastErr error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		resp, err := send(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil && lastErr != nil && s == repeatable {
			// The caller's deadline ended this attempt midway: for a call
			// safe to repeat, the last answer Plaid gave says more than
			// the timeout does.
			return c.failure(op, lastResp, lastErr, secrets)
		}
		lastResp, lastErr = resp, err
		if attempt >= c.maxAttempts || !retryable(resp, err, s) {
			return c.failure(op, resp, err, secrets)
		}
		wait := time.Duration(rand.Int64N(int64(min(retryCap, retryBase<<(attempt-1))) + 1))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return c.failure(op, resp, err, secrets)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return c.failure(op, resp, err, secrets)
		case <-t.C:
		}
	}
}

// failure converts a call's last failure, marking it with
// linkd.ErrOutcomeUnknown when Plaid may have acted on it: no answer came
// back although the request may have been sent, or a 5xx came from
// something other than Plaid (a gateway timing out).
func (c *Client) failure(op string, resp *http.Response, err error, secrets []string) error {
	unknown := false
	if resp == nil {
		var dnsErr *net.DNSError
		unknown = !errors.Is(err, syscall.ECONNREFUSED) && !errors.As(err, &dnsErr)
	} else if resp.StatusCode >= 500 {
		pe, notPlaid := plaidgo.ToPlaidError(err)
		unknown = notPlaid != nil || pe.ErrorType == ""
	}
	e := c.convert(op, resp, err, secrets...)
	if unknown {
		return fmt.Errorf("%w (%w)", e, linkd.ErrOutcomeUnknown)
	}
	return e
}

// retryable reports whether a failed call may be sent again: for any call
// when the connection was refused or Plaid answered RATE_LIMIT_EXCEEDED
// (nothing was done), and for repeatable calls also on Plaid's API_ERROR
// (INTERNAL_SERVER_ERROR, PLANNED_MAINTENANCE) and any 5xx. Timeouts are
// not retried: the caller's deadline is what is left, and it is spent.
func retryable(resp *http.Response, err error, s safety) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	var errorType, errorCode string
	if pe, notPlaid := plaidgo.ToPlaidError(err); notPlaid == nil {
		errorType, errorCode = string(pe.ErrorType), pe.ErrorCode
	}
	if status == http.StatusTooManyRequests || errorType == "RATE_LIMIT_EXCEEDED" {
		return true
	}
	if s == once {
		return false
	}
	return status >= 500 || errorType == "API_ERROR" || errorCode == "INTERNAL_SERVER_ERROR" || errorCode == "PLANNED_MAINTENANCE"
}
