package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Tracing is linkd's OpenTelemetry tracing: W3C trace context taken from
// calls and passed on to Plaid always; spans recorded and exported over
// OTLP/HTTP only when the standard OTEL_* variables ask for it.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
	prop     propagation.TextMapPropagator
}

// TracingEnabled reports whether the OTEL_* variables ask for exported
// traces: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set, unless
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func TracingEnabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// NewTracing returns Tracing, exporting when TracingEnabled. The exporter
// reads the rest of its settings (endpoint, headers, timeout) from the
// OTEL_EXPORTER_OTLP_* variables itself; OTEL_SERVICE_NAME defaults to
// linkd. It returns an error for an exporter it cannot configure.
func NewTracing(ctx context.Context, getenv func(string) string) (*Tracing, error) {
	t := &Tracing{
		provider: noop.NewTracerProvider(),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	if !TracingEnabled(getenv) {
		return t, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "linkd"
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		res = resource.Default()
	}
	t.sdk = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.provider = t.sdk
	return t, nil
}

// NewTracingWith returns Tracing recording into provider, for tests.
func NewTracingWith(provider trace.TracerProvider) *Tracing {
	return &Tracing{provider: provider, prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Tracer returns linkd's tracer.
func (t *Tracing) Tracer() trace.Tracer { return t.provider.Tracer("github.com/linkd/linkd") }

// GRPCServerOption traces every gRPC call, continuing the caller's trace.
// Without export, use ExtractUnary and ExtractStream instead.
func (t *Tracing) GRPCServerOption() grpc.ServerOption {
	return grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(t.prop)))
}

// InProcessUnary traces the gRPC half of REST calls, which the REST
// gateway makes in process (inProcess reports those) and so no gRPC stats
// handler sees: one server span per call, named as otelgrpc names them,
// inside the HTTP request's span.
func (t *Tracing) InProcessUnary(inProcess func(context.Context) bool) grpc.UnaryServerInterceptor {
	tracer := t.provider.Tracer("github.com/linkd/linkd")
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if !inProcess(ctx) {
			return next(ctx, req)
		}
		ctx, span := tracer.Start(ctx, strings.TrimPrefix(info.FullMethod, "/"), trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		resp, err := next(ctx, req)
		if err != nil {
			span.SetStatus(otelcodes.Error, status.Code(err).String())
		}
		return resp, err
	}
}

// ExtractUnary, for use without export instead of GRPCServerOption and
// InProcessUnary, takes the caller's trace context and baggage from the
// metadata of each gRPC call into its context, to be passed on to Plaid,
// and records nothing: otelgrpc's stats handler would start a no-op span
// and build metric attributes for a no-op meter on every call. The gRPC
// half of a REST call (inProcess reports those) has them already from
// WrapHTTP, as with export.
func (t *Tracing) ExtractUnary(inProcess func(context.Context) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if !inProcess(ctx) {
			ctx = t.prop.Extract(ctx, incomingCarrier{ctx})
		}
		return next(ctx, req)
	}
}

// ExtractStream is ExtractUnary for streams.
func (t *Tracing) ExtractStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	ctx := ss.Context()
	if tctx := t.prop.Extract(ctx, incomingCarrier{ctx}); tctx != ctx {
		ss = tracedStream{ss, tctx}
	}
	return next(srv, ss)
}

// tracedStream is a ServerStream with the caller's trace in its context.
type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s tracedStream) Context() context.Context { return s.ctx }

// incomingCarrier reads a call's incoming gRPC metadata one key at a
// time, as otelgrpc's carrier does (the first value of a key), without
// copying all of it.
type incomingCarrier struct{ ctx context.Context }

func (c incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set is never called: the carrier is only extracted from.
func (incomingCarrier) Set(string, string) {}

func (c incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// WrapHTTP traces every HTTP request, continuing the caller's trace.
// Without export it only takes the caller's trace context and baggage
// from the headers into the request's context, to be passed on to Plaid:
// otelhttp's handler would start a no-op span and build metric attributes
// for a no-op meter on every request.
func (t *Tracing) WrapHTTP(h http.Handler) http.Handler {
	if !t.Enabled() {
		// The propagator's header names, looked up as net/http keeps them,
		// so that a request carrying none (most) costs a map lookup each.
		var fields []string
		for _, f := range t.prop.Fields() {
			fields = append(fields, http.CanonicalHeaderKey(f))
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !hasAny(r.Header, fields) {
				h.ServeHTTP(w, r)
				return
			}
			ctx := r.Context()
			if tctx := t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header)); tctx != ctx {
				r = r.WithContext(tctx)
			}
			h.ServeHTTP(w, r)
		})
	}
	return otelhttp.NewHandler(h, "http", otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(t.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }))
}

// hasAny reports whether h has a value under any of keys (canonical).
func hasAny(h http.Header, keys []string) bool {
	for _, k := range keys {
		if len(h[k]) > 0 {
			return true
		}
	}
	return false
}

// WrapPlaidTransport passes the call's trace on to Plaid in traceparent
// and, when spans are exported, gives each request to Plaid a client span
// named by its endpoint. Without export it only injects the headers:
// otelhttp's transport would build metric attributes for its no-op meter
// on every request (7% of linkd's CPU under CreateLinkToken load).
func (t *Tracing) WrapPlaidTransport(rt http.RoundTripper) http.RoundTripper {
	if !t.Enabled() {
		return propagatingTransport{next: rt, prop: t.prop}
	}
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(t.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "plaid " + r.URL.Path }))
}

// propagatingTransport injects the request context's trace context and
// baggage into its headers, as otelhttp's transport does, and nothing else.
type propagatingTransport struct {
	next http.RoundTripper
	prop propagation.TextMapPropagator
}

func (p propagatingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	carrier := propagation.MapCarrier{}
	p.prop.Inject(r.Context(), carrier)
	if len(carrier) == 0 {
		return p.next.RoundTrip(r)
	}
	// A RoundTripper must not change the request it is given.
	r = r.Clone(r.Context())
	for k, v := range carrier {
		r.Header.Set(k, v)
	}
	return p.next.RoundTrip(r)
}

// Shutdown flushes spans not yet exported, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}
