package plaidemu

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// Faults are error modes applied to every request that passes routing, for
// testing how callers cope with an unhealthy Plaid. Queued FailNext
// failures come first.
type Faults struct {
	// ErrorRate is the fraction of requests, 0 to 1, answered with Error
	// instead of being served: nothing is done for them.
	ErrorRate float64
	// Error is the injected failure; zero means API_ERROR
	// INTERNAL_SERVER_ERROR with HTTP 500.
	Error Error
	// Latency is added before every answer; Jitter adds up to that much
	// more at random.
	Latency, Jitter time.Duration
}

// SetFaults replaces the emulator's fault modes; the zero Faults turns them
// off. It cannot fail.
func (e *Emulator) SetFaults(f Faults) {
	if f.Error == (Error{}) {
		f.Error = Error{Type: TypeAPIError, Code: "INTERNAL_SERVER_ERROR", Message: "an unexpected error occurred (injected)"}
	}
	e.faults.Store(&f)
}

// injectFault applies the fault modes to r: it waits out the added latency
// (or until the client gives up) and reports the failure to answer with,
// if this request draws one. It reads the modes without e.mu, which every
// request would otherwise take once more just for this (linkd's callers
// queued on that mutex under load).
func (e *Emulator) injectFault(r *http.Request) *Error {
	f := e.faults.Load()
	if f == nil {
		return nil
	}
	if delay := f.Latency + time.Duration(rand.Int64N(int64(f.Jitter)+1)); delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		perr := f.Error
		return &perr
	}
	return nil
}

// HangAfterNext makes the next successful request to path do its work and
// then send no answer until the client gives up: the caller cannot know
// that the call happened. Calls queue up. It cannot fail.
func (e *Emulator) HangAfterNext(path string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hangs == nil {
		e.hangs = map[string]int{}
	}
	e.hangs[path]++
}

// takeHang reports whether a request to path that succeeded must hang, and
// uses up that hang.
func (e *Emulator) takeHang(path string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hangs[path] == 0 {
		return false
	}
	e.hangs[path]--
	return true
}
