package main

import (
	"net/http"
	"strings"
	"testing"
)

// BenchmarkLinkd_RESTHandler is the REST path's own work, without the
// network: a ParseRedirect of the smallest redirect (the noop scenario of
// linkd-load) through linkd's whole HTTP handler (request id, access log,
// metrics, the gateway, the in-process gRPC chain, protojson both ways),
// served straight to ServeHTTP with a response writer that keeps nothing.
// cpu-µs/op (the process's CPU time per call) moves less than ns/op when
// the machine is shared.
//
//	go test -run='^$' -bench=Linkd_RESTHandler -benchmem -count=6 ./cmd/linkd/
func BenchmarkLinkd_RESTHandler(b *testing.B) {
	ts := MustStartServer(b, "LINKD_API_KEYS=bench-key", "LINKD_USER_RATE=0")
	h := ts.http.Handler
	body := `{"url":"plaidlink://exit?status=requires_credentials&link_session_id=noop"}`
	w := &discardWriter{h: http.Header{}}
	defer reportCPU(b)()
	for b.Loop() {
		r, _ := http.NewRequest(http.MethodPost, "/v1/link/redirect/parse", strings.NewReader(body))
		r.Header["Authorization"] = []string{"Bearer bench-key"}
		r.Header["Content-Type"] = []string{"application/json"}
		r.RemoteAddr = "127.0.0.1:40000"
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discardWriter is an http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
