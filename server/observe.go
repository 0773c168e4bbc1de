package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
)

// RequestIDHeader names the request id in REST headers and gRPC metadata,
// both ways: a caller's is kept, a call without one gets one, and every
// response carries it.
const RequestIDHeader = "x-request-id"

// requestIDKey is RequestIDHeader as net/http keys it (canonical), so
// that reading and setting it on every request does not canonicalise
// the name again, an allocation each time.
const requestIDKey = "X-Request-Id"

// UnmatchedRoute is the route label of an HTTP request no route matched.
const UnmatchedRoute = "unmatched"

// Telemetry writes one access-log line per call, gRPC or REST, and
// reports each HTTP request to ObserveHTTP. Pass the same one to
// NewGRPCServer and NewHTTPHandler: a REST call and the gRPC call the
// gateway makes for it then share one request id and one log line.
type Telemetry struct {
	// Logger receives the access log; slog.Default() when nil. Give it a
	// handler wrapped by linkd.LogHandler so that every line of a call
	// carries its request id.
	Logger *slog.Logger
	// ObserveHTTP, when set, is called after every HTTP request with its
	// route (the matched pattern, UnmatchedRoute for none), method
	// (OtherMethod for none of HTTP's own) and status. It must be quick.
	ObserveHTTP func(route, method string, status int, d time.Duration)

	// rest holds the CallInfo of REST calls in flight by request id, for
	// the gRPC half of each to fill in.
	rest sync.Map
}

func (t *Telemetry) logger() *slog.Logger {
	if t == nil || t.Logger == nil {
		return slog.Default()
	}
	return t.Logger
}

// newRequestID returns a random request id.
func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}

// validRequestID reports whether a caller's request id may be kept: short
// and plain, since it goes into every log line.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// isProbe reports whether a gRPC method or HTTP path is a health probe,
// which logs at debug: they come every few seconds.
func isProbe(name string) bool {
	return strings.HasPrefix(name, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") ||
		name == "/healthz" || name == "/livez" || name == "/readyz"
}

// fromGateway reports whether a gRPC call came through the REST gateway's
// InProcessConn, i.e. is the gRPC half of a REST call.
func fromGateway(ctx context.Context) bool { return IsInProcess(ctx) }

// unary gives every gRPC call its request id (returned in the header
// metadata) and a CallInfo, and logs it once: a direct call here, the
// gRPC half of a REST call in the HTTP middleware.
func (t *Telemetry) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	var id string
	// One key, not a copy of all the metadata.
	if v := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(v) > 0 {
		id = v[0]
	}
	var call *linkd.CallInfo
	rest := false
	if t != nil && id != "" && fromGateway(ctx) {
		if v, ok := t.rest.Load(id); ok {
			call, rest = v.(*linkd.CallInfo), true
		}
	}
	if call == nil {
		if !validRequestID(id) {
			id = newRequestID()
		}
		call = &linkd.CallInfo{RequestID: id}
	}
	ctx = linkd.WithCallInfo(ctx, call)
	if rest {
		// Handler has set X-Request-Id on the response already (and
		// gatewayResponseHeaders would drop this header anyway).
		resp, err := next(ctx, req)
		call.SetRPC(info.FullMethod, status.Code(err).String())
		return resp, err
	}
	grpc.SetHeader(ctx, metadata.MD{RequestIDHeader: {id}})
	resp, err := next(ctx, req)
	code := status.Code(err)
	level := slog.LevelInfo
	switch {
	case code == codes.Internal || code == codes.Unknown:
		level = slog.LevelError
	case isProbe(info.FullMethod):
		level = slog.LevelDebug
	}
	logAccess(ctx, t.logger(), level, "rpc", slog.String("method", info.FullMethod), slog.String("code", code.String()), slog.Duration("duration", time.Since(start)))
	return resp, err
}

// logAccess writes one access-log line: l.LogAttrs without the caller's
// program counter, which LogAttrs takes on every call (runtime.Callers,
// ~1 µs) for a source that would name this file's line on every access
// line alike; linkd's handlers print no source (HandlerOptions.AddSource
// is never set), so the lines read the same.
func logAccess(ctx context.Context, l *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	h := l.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r)
}

// statusRecorder remembers the status an HTTP handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Handler wraps an HTTP handler: it gives each request its request id
// (returned in X-Request-Id) and a CallInfo, writes its one access-log
// line (404s included), and reports it to ObserveHTTP. The route is the
// pattern that matched, set by gatewayRoute or routeLabel, or
// UnmatchedRoute.
func (t *Telemetry) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var id string
		if v := r.Header[requestIDKey]; len(v) > 0 {
			id = v[0]
		}
		if !validRequestID(id) {
			id = newRequestID()
		}
		call := &linkd.CallInfo{RequestID: id}
		if _, taken := t.rest.LoadOrStore(id, call); taken {
			// Two calls in flight with one caller id: the second gets its
			// own, so neither's log line takes the other's Plaid calls.
			id = newRequestID()
			call = &linkd.CallInfo{RequestID: id}
			t.rest.Store(id, call)
		}
		defer t.rest.Delete(id)
		r.Header[requestIDKey] = []string{id}
		w.Header()[requestIDKey] = []string{id}
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(linkd.WithCallInfo(r.Context(), call))
		next.ServeHTTP(rec, r)
		d := time.Since(start)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := call.Route()
		if route == "" {
			route = UnmatchedRoute
		}
		if t.ObserveHTTP != nil {
			t.ObserveHTTP(route, metricMethod(r.Method), rec.status, d)
		}
		level := slog.LevelInfo
		switch {
		case isProbe(r.URL.Path) && rec.status != http.StatusInternalServerError:
			// A probe's 503 is its answer (NOT_SERVING: draining, a full
			// disk), as the gRPC health Check's is: at debug like any
			// probe, not an error line per balancer poll.
			level = slog.LevelDebug
		case rec.status >= 500:
			level = slog.LevelError
		}
		// slog.Attrs rather than key-value pairs: the values are not boxed
		// and paired up again.
		attrs := make([]slog.Attr, 0, 7)
		attrs = append(attrs, slog.String("method", truncate(r.Method, 16)), slog.String("route", route), slog.Int("status", rec.status), slog.Duration("duration", d))
		if route == UnmatchedRoute {
			// What was asked for, cut short: a 404's only clue.
			attrs = append(attrs, slog.String("path", truncate(r.URL.Path, 80)))
		}
		if m, code := call.RPC(); m != "" {
			attrs = append(attrs, slog.String("rpc", m), slog.String("code", code))
		}
		logAccess(r.Context(), t.logger(), level, "http", attrs...)
	})
}

// gatewayRoute records the gateway pattern a REST request matched, as
// "METHOD /pattern", in its CallInfo: a route label without ids in it.
//
// The gateway wraps each route's handler in its own gatewayRoute, so one
// returned handler serves one pattern: its label is built by its first
// request and kept, not rebuilt (Pattern.String and the rewrite, five
// allocations) on every call. It is built again when a request comes with
// another method (a POST the gateway serves on a GET route).
func gatewayRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	var label atomic.Pointer[methodLabel]
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			if c := linkd.CallInfoFrom(r.Context()); c != nil {
				l := label.Load()
				if l == nil || l.method != r.Method {
					// "/v1/items/{item_id=*}" reads as the proto's
					// "/v1/items/{item_id}".
					l = &methodLabel{method: r.Method, label: r.Method + " " + strings.ReplaceAll(p.String(), "=*}", "}")}
					label.Store(l)
				}
				c.SetRoute(l.label)
			}
		}
		next(w, r, params)
	}
}

// methodLabel is a route label and the request method it was built for.
type methodLabel struct{ method, label string }

// routeLabel records pattern as the route of the requests h serves.
func routeLabel(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := linkd.CallInfoFrom(r.Context()); c != nil {
			c.SetRoute(pattern)
		}
		h.ServeHTTP(w, r)
	})
}

// gatewayHeaders forwards the request id to gRPC metadata and no other
// header: the gateway passes Authorization on itself, and nothing in the
// chain or the handlers reads any other. grpc-gateway's default matcher
// copied each permanent header (Authorization a second time among them)
// into a grpcgateway-* key: strings and a map entry each, on every call,
// for no reader.
func gatewayHeaders(key string) (string, bool) {
	if strings.EqualFold(key, RequestIDHeader) {
		return RequestIDHeader, true
	}
	return "", false
}

// gatewayResponseHeaders drops the request id from the gRPC header
// metadata the gateway would copy (Handler has set X-Request-Id already).
func gatewayResponseHeaders(key string) (string, bool) {
	if strings.EqualFold(key, RequestIDHeader) {
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// OtherMethod is the method label of an HTTP request whose method is
// none of HTTP's own (RFC 9110's and PATCH).
const OtherMethod = "OTHER"

// metricMethod returns an HTTP method fit for a metric label: net/http
// takes any token as a method, so the client's own word would make a new
// series per made-up method, unbounded and without credentials.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return OtherMethod
}

// truncate returns s cut to n bytes, marked when cut: for logging input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// HealthWatchers ends open health Watch streams when shutdown begins.
// health.Server.Shutdown sends NOT_SERVING to watchers but leaves their
// streams open, and GracefulStop waits for every stream, so one idle
// watcher used to hold shutdown for its whole budget.
type HealthWatchers struct {
	once    sync.Once
	closing chan struct{}
}

// NewHealthWatchers returns HealthWatchers for GRPCOptions.
func NewHealthWatchers() *HealthWatchers {
	return &HealthWatchers{closing: make(chan struct{})}
}

// Close ends every open Watch stream, and any opened later, with
// UNAVAILABLE. Call it after the health server reports NOT_SERVING, so
// watchers hear that first.
func (h *HealthWatchers) Close() {
	h.once.Do(func() { close(h.closing) })
}

// stream ends health Watch streams when Close is called.
func (h *HealthWatchers) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if h == nil || info.FullMethod != healthpb.Health_Watch_FullMethodName {
		return next(srv, ss)
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	go func() {
		select {
		case <-h.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := next(srv, watchStream{ss, ctx})
	if ss.Context().Err() == nil && ctx.Err() != nil {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	return err
}

// watchStream is a ServerStream with a context that ends at shutdown.
type watchStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
