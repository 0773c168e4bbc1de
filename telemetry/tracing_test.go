package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
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
