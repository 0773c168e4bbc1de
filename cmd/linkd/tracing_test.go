package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/metadata"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestLinkd_Tracing: with an OTLP endpoint set, a REST call that carries
// a W3C traceparent is traced under that trace, with spans around its
// Plaid call and its store transactions, and the spans reach the
// collector by the time Close returns.
func TestLinkd_Tracing(t *testing.T) {
	var mu sync.Mutex
	var exported bytes.Buffer
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("gzip: %v", err)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		mu.Lock()
		exported.Write(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

	ts := MustStartServer(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", ts.BaseURL+"/v1/link/token/create", strings.NewReader(`{"client_user_id":"trace-user"}`))
	req.Header.Set("Authorization", "Bearer "+ts.APIKey)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := ts.Main.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := exported.Bytes()
	mu.Unlock()
	id, _ := hex.DecodeString(traceID)
	if !bytes.Contains(got, id) {
		t.Error("no exported span carries the caller's trace id")
	}
	for _, span := range []string{"plaid /link/token/create", "store.PutLinkToken", "linkd.v1.LinkService/CreateLinkToken"} {
		if !bytes.Contains(got, []byte(span)) {
			t.Errorf("no span %q exported", span)
		}
	}
	if bytes.Contains(got, []byte("trace-user")) {
		t.Error("a span carries the client_user_id")
	}
}

// TestLinkd_TraceContextWithoutExport: with no OTEL_* variables (no span
// is recorded or exported), a caller's W3C traceparent still reaches
// Plaid, over gRPC (metadata) and over REST (a header), so Plaid's side
// of a call can be found by the caller's trace id.
func TestLinkd_TraceContextWithoutExport(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"} {
		t.Setenv(k, "")
	}
	emu, env := standaloneEmulator(t)
	target, err := url.Parse(emu.URL())
	must(t, err)
	// A proxy in front of the emulator notes the traceparent of each
	// /link/token/create by client_user_id.
	var mu sync.Mutex
	seen := map[string]string{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	plaid := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/link/token/create" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			for _, user := range []string{"trace-grpc", "trace-rest"} {
				if bytes.Contains(body, []byte(user)) {
					mu.Lock()
					seen[user] = r.Header.Get("traceparent")
					mu.Unlock()
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer plaid.Close()
	env[len(env)-1] = "PLAID_BASE_URL=" + plaid.URL
	ts := MustStartServer(t, env...)
	if ts.Main.tracing == nil || ts.Main.tracing.Enabled() {
		t.Fatal("want tracing on without export")
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	parent := "00-" + traceID + "-00f067aa0ba902b7-01"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+ts.APIKey, "traceparent", parent)
	_, err = ts.GRPC(t).CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "trace-grpc"})
	must(t, err)
	req, _ := http.NewRequest("POST", ts.BaseURL+"/v1/link/token/create", strings.NewReader(`{"client_user_id":"trace-rest"}`))
	req.Header.Set("Authorization", "Bearer "+ts.APIKey)
	req.Header.Set("traceparent", parent)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("REST status %d", resp.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, user := range []string{"trace-grpc", "trace-rest"} {
		if got := seen[user]; !strings.Contains(got, traceID) {
			t.Errorf("%s: Plaid got traceparent %q, want the caller's trace %s", user, got, traceID)
		}
	}
}
