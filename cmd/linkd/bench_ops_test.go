package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// BenchmarkLinkd_Instrumentation measures what metrics, access logs and
// tracing cost, on the same run: three linkds side by side, each under
// the same calls.
//
//	off     LINKD_METRICS=off, LINKD_LOG_LEVEL=warn: no metrics, no access log, no spans
//	logs    LINKD_METRICS=off: the access log only
//	metrics LINKD_LOG_LEVEL=warn: metrics (and W3C propagation) only
//	default metrics and the access log: linkd's defaults, no OTEL_*
//	traced  the defaults and every span exported over OTLP/HTTP to a local collector
//
// The access log goes to an in-memory buffer here (MustStartServer's), a
// little cheaper than a write to stderr per line.
//
// Run with
//
//	go test -run='^$' -bench=Instrumentation -benchtime=2s -count=3 ./cmd/linkd/
//
// Besides ns/op (wall time, at the mercy of whoever else uses the machine)
// each reports cpu-µs/op: the process's CPU time (client and server, both
// in this process) per call, which contention disturbs far less.
func BenchmarkLinkd_Instrumentation(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(collector.Close) // after the linkds', which flush to it
	type mode struct {
		name string
		ts   *testServer
	}
	modes := []mode{
		{"off", MustStartServer(b, "LINKD_METRICS=off", "LINKD_LOG_LEVEL=warn")},
		{"logs", MustStartServer(b, "LINKD_METRICS=off")},
		{"metrics", MustStartServer(b, "LINKD_LOG_LEVEL=warn")},
		{"default", MustStartServer(b)},
	}
	// The exporter reads the process environment when the linkd starts.
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	modes = append(modes, mode{"traced", MustStartServer(b)})

	parse := &linkdv1.ParseRedirectRequest{Url: docConnectedURL}
	for _, m := range modes {
		c := m.ts.GRPC(b)
		b.Run("ParseRedirect/serial/"+m.name, func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := c.ParseRedirect(context.Background(), parse); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, m := range modes {
		c := m.ts.GRPC(b)
		b.Run("ParseRedirect/parallel/"+m.name, func(b *testing.B) { parseInParallel(b, c, parse) })
	}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, m := range modes {
		c := m.ts.GRPC(b)
		tok, _ := mustLink(b, c, "bench-user")
		var n, g atomic.Int64
		// A durable SubmitRedirect: an event recorded in its session, one
		// group-committed fsynced write.
		b.Run("SubmitRedirect/parallel/"+m.name, func(b *testing.B) {
			defer reportCPU(b)()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				session := fmt.Sprintf("%s-%d", m.name, g.Add(1))
				for pb.Next() {
					i := n.Add(1)
					_, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{
						Url:       eventURL("TRANSITION_VIEW", "CREDENTIAL", fmt.Sprintf("%s-%d", session, i/100), t0.Add(time.Duration(i)*time.Millisecond)),
						LinkToken: tok.GetLinkToken(),
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per op as cpu-µs/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		}
	}
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
