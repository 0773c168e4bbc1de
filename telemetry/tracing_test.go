package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Without export, requests to Plaid still carry the caller's trace in
// traceparent, and carry none when the call has no trace.
func TestTracing_WrapPlaidTransport_Off(t *testing.T) {
	tr, err := NewTracing(context.Background(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Fatal("tracing enabled without OTEL_* variables")
	}
	got := make(chan string, 1)
	plaid := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
	}))
	defer plaid.Close()
	client := &http.Client{Transport: tr.WrapPlaidTransport(http.DefaultTransport)}

	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"Traced", traced, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"Untraced", context.Background(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(tt.ctx, http.MethodPost, plaid.URL+"/link/token/create", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if h := <-got; h != tt.want {
				t.Errorf("Plaid got traceparent %q, want %q", h, tt.want)
			}
			if h := req.Header.Get("traceparent"); h != "" {
				t.Errorf("the caller's request was changed: traceparent %q", h)
			}
		})
	}
}

// Without export, the gRPC interceptors and the HTTP wrapper give the
// handler the caller's trace context, except to the gRPC half of a REST
// call, which has the HTTP request's already.
func TestTracing_Extract_Off(t *testing.T) {
	tr, err := NewTracing(context.Background(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const want = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceOf := func(ctx context.Context) string {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			return sc.TraceID().String()
		}
		return ""
	}
	incoming := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", parent))
	for _, tt := range []struct {
		name      string
		inProcess bool
		want      string
	}{{"Unary", false, want}, {"UnaryInProcess", true, ""}} {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			_, _ = tr.ExtractUnary(func(context.Context) bool { return tt.inProcess })(incoming, nil, &grpc.UnaryServerInfo{},
				func(ctx context.Context, _ any) (any, error) { got = traceOf(ctx); return nil, nil })
			if got != tt.want {
				t.Errorf("trace %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("Stream", func(t *testing.T) {
		var got string
		_ = tr.ExtractStream(nil, contextStream{ctx: incoming}, &grpc.StreamServerInfo{},
			func(_ any, ss grpc.ServerStream) error { got = traceOf(ss.Context()); return nil })
		if got != want {
			t.Errorf("trace %q, want %q", got, want)
		}
	})
	t.Run("HTTP", func(t *testing.T) {
		var got string
		h := tr.WrapHTTP(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = traceOf(r.Context()) }))
		req := httptest.NewRequest(http.MethodPost, "/v1/redirect/parse", nil)
		req.Header.Set("traceparent", parent)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if got != want {
			t.Errorf("trace %q, want %q", got, want)
		}
	})
}

// contextStream is a grpc.ServerStream that has only a context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s contextStream) Context() context.Context { return s.ctx }
