package linkd

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// CallInfo is what every log line of one call carries: the call's request
// id, and the request_ids Plaid gave the requests made for it. The
// transport puts one in the context of each call; the Plaid client adds to
// it. It is safe for concurrent use.
type CallInfo struct {
	// RequestID is the call's x-request-id, the caller's or a generated one.
	RequestID string

	mu     sync.Mutex
	plaid  []string
	route  string
	method string
	code   string
}

type callInfoKey struct{}

// WithCallInfo returns ctx carrying c.
func WithCallInfo(ctx context.Context, c *CallInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, c)
}

// CallInfoFrom returns the CallInfo of ctx, or nil outside a call (a
// background job).
func CallInfoFrom(ctx context.Context) *CallInfo {
	c, _ := ctx.Value(callInfoKey{}).(*CallInfo)
	return c
}

// AddPlaidRequestID records the request_id of a Plaid response.
func (c *CallInfo) AddPlaidRequestID(id string) {
	if c == nil || id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plaid = append(c.plaid, id)
}

// PlaidRequestIDs returns the request_ids Plaid gave so far, comma-joined;
// "" when Plaid was not called.
func (c *CallInfo) PlaidRequestIDs() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.plaid, ",")
}

// SetRoute records the route (the REST pattern) a call matched.
func (c *CallInfo) SetRoute(route string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.route = route
}

// Route returns what SetRoute recorded, or "".
func (c *CallInfo) Route() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.route
}

// SetRPC records the gRPC method a REST call became and its status code,
// for the REST call's single access-log line.
func (c *CallInfo) SetRPC(method, code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.method, c.code = method, code
}

// RPC returns what SetRPC recorded: "" and "" when none.
func (c *CallInfo) RPC() (method, code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.method, c.code
}

// LogHandler returns h adding to every record logged with a call's
// context its request_id and, once Plaid was called, plaid_request_id
// (unless the record names one Plaid request itself, as the embedded
// emulator's lines do): one key of each per line.
func LogHandler(h slog.Handler) slog.Handler { return callHandler{h} }

type callHandler struct{ slog.Handler }

func (h callHandler) Handle(ctx context.Context, r slog.Record) error {
	if c := CallInfoFrom(ctx); c != nil {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", c.RequestID))
		if ids := c.PlaidRequestIDs(); ids != "" && !hasAttr(r, "plaid_request_id") {
			r.AddAttrs(slog.String("plaid_request_id", ids))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// hasAttr reports whether r has a top-level attribute named key.
func hasAttr(r slog.Record, key string) (found bool) {
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

func (h callHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return callHandler{h.Handler.WithAttrs(as)}
}

func (h callHandler) WithGroup(name string) slog.Handler {
	return callHandler{h.Handler.WithGroup(name)}
}
