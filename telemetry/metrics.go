// Package telemetry is linkd's Prometheus metrics and OpenTelemetry
// tracing: the only package that imports either. It hands the rest of
// linkd plain hooks (functions, interceptors, wrappers) so that the
// service, the server, the Plaid client and the stores stay free of both.
// No metric carries an id or a token: every label is a method, a route
// pattern, a code or a fixed word.
package telemetry

import (
	"net/http"
	"strconv"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/linkd/linkd/plaid"
)

// latencyBuckets span a parse (tens of µs) to a slow Plaid call (15 s).
var latencyBuckets = []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15}

// Metrics is linkd's Prometheus registry and the collectors in it.
type Metrics struct {
	registry    *prometheus.Registry
	grpc        *grpcprom.ServerMetrics
	http        *prometheus.HistogramVec
	plaid       *prometheus.HistogramVec
	exchanges   *prometheus.CounterVec
	redirects   *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
	storeOps    *prometheus.HistogramVec
	commitBatch prometheus.Histogram
	commitTime  prometheus.Histogram
}

// NewMetrics returns Metrics with every collector registered, the Go
// runtime's and the process's included.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(latencyBuckets))),
		http: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "linkd_http_request_duration_seconds", Help: "HTTP requests by route pattern, method and status code.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "code"}),
		plaid: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "linkd_plaid_request_duration_seconds", Help: "HTTP requests to Plaid by endpoint and Plaid error_code (empty on success), retries counted each.",
			Buckets: latencyBuckets,
		}, []string{"endpoint", "error_code"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkd_exchanges_total", Help: "Public token exchanges by outcome: created, repeat, duplicate, spent, unknown, error.",
		}, []string{"outcome"}),
		redirects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkd_redirects_total", Help: "Submitted Link redirects by kind: connected, connected_update, exit, event.",
		}, []string{"kind"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkd_webhooks_total", Help: "Plaid webhook deliveries by webhook_type (unknown unless verified) and verification result.",
		}, []string{"type", "verification"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "linkd_store_operation_duration_seconds", Help: "Store operations (one transaction each) by operation and result (ok, error).",
			Buckets: latencyBuckets,
		}, []string{"operation", "result"}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linkd_bbolt_commit_batch_size", Help: "Writes carried by one bbolt commit (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linkd_bbolt_commit_duration_seconds", Help: "bbolt write transactions, commit and fsync included.",
			Buckets: latencyBuckets,
		}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, m.http, m.plaid, m.exchanges, m.redirects, m.webhooks, m.storeOps, m.commitBatch, m.commitTime,
	)
	return m
}

// Handler serves the metrics in Prometheus's formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// UnaryInterceptor counts gRPC calls by method and code and times them.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return m.grpc.UnaryServerInterceptor()
}

// StreamInterceptor counts gRPC streams (health watches) likewise.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return m.grpc.StreamServerInterceptor()
}

// InitializeGRPC creates the series of every method of srv at zero, so
// dashboards see them before the first call.
func (m *Metrics) InitializeGRPC(srv *grpc.Server) { m.grpc.InitializeMetrics(srv) }

// ObserveHTTP is server.Telemetry's ObserveHTTP.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	m.http.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// ObservePlaid is plaid.Config's Observe.
func (m *Metrics) ObservePlaid(c plaid.Call) {
	m.plaid.WithLabelValues(c.Endpoint, c.ErrorCode).Observe(c.Duration.Seconds())
}

// Exchange counts an exchange: service.Metrics.
func (m *Metrics) Exchange(outcome string) { m.exchanges.WithLabelValues(outcome).Inc() }

// Redirect counts a redirect: service.Metrics.
func (m *Metrics) Redirect(kind string) { m.redirects.WithLabelValues(kind).Inc() }

// Webhook is server.Config's OnWebhook.
func (m *Metrics) Webhook(webhookType, verification string) {
	m.webhooks.WithLabelValues(webhookType, verification).Inc()
}

// ObserveCommit is store.Options's OnCommit: bbolt's group commits.
func (m *Metrics) ObserveCommit(batchSize int, d time.Duration) {
	m.commitBatch.Observe(float64(batchSize))
	m.commitTime.Observe(d.Seconds())
}

// observeStoreOp times one store operation (see Store).
func (m *Metrics) observeStoreOp(op string, err error, d time.Duration) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.storeOps.WithLabelValues(op, result).Observe(d.Seconds())
}
