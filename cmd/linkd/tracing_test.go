package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
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
