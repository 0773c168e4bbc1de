package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/jwt"
	"github.com/linkd/linkd/linkpage"
	"github.com/linkd/linkd/openapi"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/store"
	"github.com/linkd/linkd/telemetry"
	"github.com/linkd/linkd/webhook"
)

// Main is the linkd program: ParseFlags, then Run, then Close. Tests run the
// same Main on port 0 with a temporary data directory.
type Main struct {
	Config Config
	// LogOutput receives the logs; os.Stderr by default.
	LogOutput io.Writer
	// Now is the clock of the store, the server and the embedded emulator;
	// time.Now when nil. Tests move it to expire tokens.
	Now func() time.Time

	log      *slog.Logger
	svc      *service.Service
	rpc      *server.Server
	db       linkd.Store
	plaid    *plaid.Client
	emulator *plaidemu.Emulator
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	grpcLn   net.Listener
	httpLn   net.Listener
	admin    *http.Server
	adminLn  net.Listener
	// bolt is the bbolt store under db's instrumentation, nil with
	// Postgres: what /backup copies.
	bolt     *store.DB
	metrics  *telemetry.Metrics // nil with LINKD_METRICS=off
	tracing  *telemetry.Tracing // nil with LINKD_METRICS=off and no OTEL_*
	watchers *server.HealthWatchers
	ready    readiness
	backupMu sync.Mutex // one /backup at a time

	closeOnce sync.Once
	closeErr  error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	// apiKeyPath is where a generated API key was stored, if one was.
	apiKeyPath string
}

// NewMain returns a Main with its defaults.
func NewMain() *Main {
	return &Main{LogOutput: os.Stderr}
}

// Run opens the store, connects to Plaid (starting the emulator when no
// credentials are set) and starts serving gRPC and HTTP. It returns once
// both listen; Close stops them.
func (m *Main) Run(ctx context.Context) (err error) {
	c := m.Config
	var level slog.Level
	level.UnmarshalText([]byte(c.LogLevel)) // checked by ParseFlags
	logOpts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		m.log = slog.New(linkd.LogHandler(slog.NewJSONHandler(m.LogOutput, logOpts)))
	} else {
		m.log = slog.New(linkd.LogHandler(slog.NewTextHandler(m.LogOutput, logOpts)))
	}
	// What Run starts lives until Close, not until the caller's context
	// ends: main cancels that on SIGTERM, and Close must still drain HTTP
	// calls through the gateway's connection before it goes.
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if c.Metrics {
		m.metrics = telemetry.NewMetrics()
	}
	if c.Metrics || c.Tracing {
		if m.tracing, err = telemetry.NewTracing(ctx, os.Getenv); err != nil {
			return err
		}
	}
	if err := m.checkDataDir(); err != nil {
		return err
	}
	if m.db, err = m.openStore(ctx); err != nil {
		return m.damagedFile(err)
	}
	if err := m.checkStore(ctx); err != nil {
		return err
	}
	m.bolt, _ = m.db.(*store.DB)
	if m.metrics != nil || m.tracing != nil {
		m.db = telemetry.Store(m.db, m.metrics, m.tracing)
	}
	if err := m.checkKeys(ctx); err != nil {
		return err
	}
	apiKeys, err := m.apiKeys()
	if err != nil {
		return err
	}
	pc, err := m.plaidClient()
	if err != nil {
		return err
	}
	m.plaid = pc
	var tlsConfig *tls.Config
	if c.TLSCert != "" {
		if tlsConfig, err = server.LoadTLSConfig(server.TLSFiles{Cert: c.TLSCert, Key: c.TLSKey, ClientCA: c.TLSClientCA, Logger: m.log}); err != nil {
			return err
		}
	}
	if m.grpcLn, err = net.Listen("tcp", c.GRPCAddr); err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	if m.httpLn, err = net.Listen("tcp", c.HTTPAddr); err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	if m.adminLn, err = net.Listen("tcp", c.AdminAddr); err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	linkURL, routes := c.LinkURL, []server.Route(nil)
	if m.emulator != nil {
		// No Plaid: webview_url opens linkd's own Link page, which runs
		// sessions against the emulator.
		routes = append(routes, server.Route{Pattern: linkpage.Prefix, Handler: newEmulatorLinkPage(m.emulator, m.log)})
		if linkURL == "" {
			scheme := "http://"
			if tlsConfig != nil {
				scheme = "https://"
			}
			linkURL = scheme + browsableAddr(m.httpLn.Addr()) + linkpage.Path
		}
		// Hosted Link opens the same page, in a browser tab.
		m.emulator.SetLinkPageURL(linkURL)
		m.emulator.SetLinkWebhooksForWebview(c.EmulatorLinkWebhooks)
	}
	var sandboxLink linkd.SandboxLink
	var emulatorItems linkd.EmulatorItems
	if m.emulator != nil {
		sandboxLink, emulatorItems = emulatorSandbox{m.emulator}, emulatorSandbox{m.emulator}
	}
	var svcMetrics service.Metrics
	var onWebhook func(string, string)
	if m.metrics != nil {
		svcMetrics, onWebhook = m.metrics, m.metrics.Webhook
	}
	m.svc, err = service.New(service.Config{
		Metrics: svcMetrics,
		Plaid:   pc,
		Store:   m.db,
		Logger:  m.log,
		LinkURL: linkURL,
		Defaults: service.LinkDefaults{
			ClientName:   c.ClientName,
			Products:     splitList(c.Products),
			CountryCodes: splitList(c.CountryCodes),
			Language:     c.Language,
			Webhook:      c.Webhook,
		},
		Duplicates:    c.DuplicateItems,
		Now:           m.Now,
		SandboxLink:   sandboxLink,
		EmulatorItems: emulatorItems,
		Admit:         m.admitExchange,
	})
	if err != nil {
		return err
	}
	hooks, err := webhook.NewVerifier(webhook.Config{Keys: pc.WebhookVerificationKey, Now: m.Now, Logger: m.log.With("component", "webhook")})
	if err != nil {
		return err
	}
	m.rpc = server.New(server.Config{Service: m.svc, Webhooks: hooks, Logger: m.log, Now: m.Now, OnWebhook: onWebhook})
	users, err := m.userTokenVerifier()
	if err != nil {
		return err
	}
	tel := &server.Telemetry{Logger: m.log}
	m.watchers = server.NewHealthWatchers()
	inproc := &server.InProcessConn{}
	gopts := server.GRPCOptions{APIKeys: apiKeys, Users: users, Logger: m.log, TLS: tlsConfig, Telemetry: tel, HealthWatchers: m.watchers,
		InProcess: inproc, UserRateLimit: server.RateLimit{PerSecond: c.UserRate, Burst: c.UserBurst}, Now: m.Now}
	routes = append(routes, m.rpc.WebhookRoute(), server.Route{Pattern: "GET " + openapi.Path, Handler: openapi.Handler()})
	hopts := server.HTTPOptions{Routes: routes, Telemetry: tel, Logger: m.log, CORSOrigins: splitList(c.CORSOrigins)}
	if m.metrics != nil {
		tel.ObserveHTTP = m.metrics.ObserveHTTP
		gopts.Unary = append(gopts.Unary, m.metrics.UnaryInterceptor())
		gopts.Stream = append(gopts.Stream, m.metrics.StreamInterceptor())
	}
	if m.tracing != nil {
		// WrapHTTP itself records spans only when they are exported.
		hopts.Wrap = m.tracing.WrapHTTP
		if m.tracing.Enabled() {
			gopts.ServerOptions = append(gopts.ServerOptions, m.tracing.GRPCServerOption())
			gopts.Unary = append(gopts.Unary, m.tracing.InProcessUnary(server.IsInProcess))
		} else {
			// Nothing recorded: only the caller's trace context is taken,
			// to be passed on to Plaid.
			gopts.Unary = append(gopts.Unary, m.tracing.ExtractUnary(server.IsInProcess))
			gopts.Stream = append(gopts.Stream, m.tracing.ExtractStream)
		}
	}
	if m.grpc, m.health, err = server.NewGRPCServer(m.rpc, gopts); err != nil {
		return err
	}
	if m.metrics != nil {
		m.metrics.InitializeGRPC(m.grpc)
	}
	handler, err := server.NewHTTPHandler(ctx, inproc, hopts)
	if err != nil {
		return err
	}
	m.admin = &http.Server{
		Handler:           m.adminHandler(apiKeys),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	m.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.grpc.Serve(m.grpcLn); err != nil {
			m.log.Error("gRPC server stopped", "err", err)
		}
	}()
	m.wg.Add(4)
	go func() {
		defer m.wg.Done()
		m.svc.RunJobs(ctx, service.Jobs{Retention: c.Retention, ReconcileEvery: c.ReconcileEvery, ReconcileRate: reconcileRate(c.ReconcileRate)})
	}()
	go func() {
		defer m.wg.Done()
		// Plain HTTP even under TLS: the admin listener is for the
		// machine's own network (Prometheus, kubelet probes).
		if err := m.admin.Serve(m.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("admin server stopped", "err", err)
		}
	}()
	go func() {
		defer m.wg.Done()
		m.watchStore(ctx)
	}()
	go func() {
		defer m.wg.Done()
		serve := m.http.Serve
		if tlsConfig != nil {
			serve = func(ln net.Listener) error { return m.http.ServeTLS(ln, "", "") }
		}
		if err := serve(m.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("HTTP server stopped", "err", err)
		}
	}()
	m.log.Info("linkd serving", "grpc", m.GRPCAddr(), "http", m.HTTPAddr(), "admin", m.AdminAddr(), "store", m.storeName(), "plaid_env", pc.Environment(),
		"tls", tlsConfig != nil, "mutual_tls", c.TLSClientCA != "", "metrics", m.metrics != nil, "tracing_export", m.tracing != nil && m.tracing.Enabled(),
		"gc_percent", gcPercent(), "memory_limit", memoryLimit())
	if m.emulator != nil {
		m.log.Info("Link page (emulator): open the webview_url that POST /v1/link/token/create returns in a browser or webview", "link_url", linkURL)
	}
	if c.ShutdownTimeout < c.PlaidTimeout+5*time.Second {
		m.log.Warn("-shutdown-timeout leaves an exchange waiting on Plaid too little time to store its Item at shutdown; make it longer than -plaid-timeout",
			"shutdown_timeout", c.ShutdownTimeout, "plaid_timeout", c.PlaidTimeout)
	}
	if m.apiKeyPath != "" {
		m.log.Info("no LINKD_API_KEYS set: using the API key stored in "+m.apiKeyPath, "path", m.apiKeyPath)
	}
	return nil
}

// plaidClient returns the Plaid client: for real Plaid when credentials are
// set, else for the embedded emulator, which it starts. Both take the same
// code path through plaid-go.
func (m *Main) plaidClient() (*plaid.Client, error) {
	c := m.Config
	cfg := plaid.Config{ClientID: c.PlaidClientID, Secret: c.PlaidSecret, Env: c.PlaidEnv, BaseURL: c.PlaidBaseURL, Timeout: c.PlaidTimeout}
	if m.metrics != nil {
		cfg.Observe = m.metrics.ObservePlaid
	}
	if m.tracing != nil {
		cfg.WrapTransport = m.tracing.WrapPlaidTransport
	}
	if c.PlaidClientID == "" {
		cfg.ClientID, cfg.Secret, cfg.Env = "linkd-emulator-"+randomToken(8), randomToken(24), linkd.PlaidSandbox
		// The credentials are new each start, as they guard only this
		// process's loopback emulator; the Items and their access tokens
		// live in the data directory, beside the store that holds them.
		emu, err := plaidemu.Start(c.EmulatorAddr, plaidemu.Options{ClientID: cfg.ClientID, Secret: cfg.Secret, Now: m.Now, Logger: m.log.With("component", "plaidemu"),
			StatePath: filepath.Join(c.DataDir, emulatorStateFile)})
		if err != nil {
			return nil, fmt.Errorf("start the embedded Plaid emulator: %w", err)
		}
		m.emulator = emu
		cfg.BaseURL = emu.URL()
		// In process: the listener serves the Link page and other
		// clients; linkd's own calls skip the loopback connection.
		cfg.Transport = emu.Transport()
		m.log.Info("no PLAID_CLIENT_ID/PLAID_SECRET set: using the embedded Plaid emulator (sandbox data, nothing leaves this machine)", "plaid_url", emu.URL())
	}
	return plaid.New(cfg)
}

// userTokenVerifier returns the verifier of end-user tokens, or nil when
// none is configured (API keys only).
func (m *Main) userTokenVerifier() (linkd.UserTokenVerifier, error) {
	c := m.Config
	if c.JWTJWKS == "" && c.JWTHS256 == "" {
		return nil, nil
	}
	v, err := jwt.New(jwt.Config{JWKS: c.JWTJWKS, HS256Secret: []byte(c.JWTHS256), Issuer: c.JWTIssuer, Audience: c.JWTAudience,
		Logger: m.log.With("component", "jwt")})
	if err != nil {
		return nil, err
	}
	m.log.Info("end-user tokens accepted", "jwks", jwt.RedactURL(c.JWTJWKS), "hs256", c.JWTHS256 != "", "issuer", c.JWTIssuer, "audience", c.JWTAudience)
	return v, nil
}

// apiKeys returns LINKD_API_KEYS, or the key stored in the data directory,
// generating it on first start. The key itself is never logged.
func (m *Main) apiKeys() ([]string, error) {
	if keys := splitList(m.Config.APIKeys); len(keys) > 0 {
		return keys, nil
	}
	path := filepath.Join(m.Config.DataDir, "api-key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := "lk_" + randomToken(32)
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("store generated API key: %w", err)
		}
		m.apiKeyPath = path
		return []string{key}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read API key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return nil, fmt.Errorf("API key file %s is empty", path)
	}
	m.apiKeyPath = path
	return []string{key}, nil
}

// GRPCAddr returns the gRPC listener's address once Run has returned.
func (m *Main) GRPCAddr() string { return m.grpcLn.Addr().String() }

// HTTPAddr returns the HTTP listener's address once Run has returned.
func (m *Main) HTTPAddr() string { return m.httpLn.Addr().String() }

// AdminAddr returns the admin listener's address once Run has returned.
func (m *Main) AdminAddr() string { return m.adminLn.Addr().String() }

// Close shuts linkd down: it reports NOT_SERVING (gRPC health, /healthz,
// /readyz) and keeps serving for DrainDelay so that load balancers stop
// sending, ends health watches, then lets HTTP and gRPC calls in flight
// finish and exchanges being stored complete, all within one
// ShutdownTimeout, and closes the emulator and the store. It returns the
// first error. Calls after the first return its error again.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	m.ready.mu.Lock()
	m.ready.stopping = true
	m.ready.mu.Unlock()
	if m.health != nil {
		m.health.Shutdown()
		if d := m.Config.DrainDelay; d > 0 {
			m.log.Info("shutting down: reporting NOT_SERVING, still serving for the drain delay", "drain_delay", d)
			time.Sleep(d)
		}
	}
	if m.watchers != nil {
		// Watchers heard NOT_SERVING; their open streams would otherwise
		// hold GracefulStop for the whole budget.
		m.watchers.Close()
	}
	timeout := m.Config.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if m.http != nil {
		errs = append(errs, m.http.Shutdown(ctx))
	}
	if m.grpc != nil {
		stopped := make(chan struct{})
		go func() { m.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			m.grpc.Stop()
		}
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.admin != nil {
		// Last of the listeners, so /readyz answers 503 throughout.
		errs = append(errs, m.admin.Shutdown(ctx))
	}
	m.wg.Wait()
	if m.svc != nil {
		// Exchanges outlive their RPC while they store the Item Plaid made;
		// closing the store under them would lose its access token.
		if err := m.svc.Drain(ctx); err != nil {
			m.log.Error("exchanges still running at shutdown", "err", err)
		}
	}
	if m.tracing != nil {
		if err := m.tracing.Shutdown(ctx); err != nil {
			m.log.Warn("spans not exported at shutdown", "err", err)
		}
	}
	if m.plaid != nil {
		m.plaid.Close()
	}
	if m.emulator != nil {
		errs = append(errs, m.emulator.Close())
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	return errors.Join(errs...)
}

// browsableAddr returns addr as a browser can reach it: a listener on all
// interfaces (":8080", "0.0.0.0:8080") is reached at 127.0.0.1.
func browsableAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

// splitList splits a comma-separated setting, dropping empty elements.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// reconcileRate maps -reconcile-rate to service.Jobs.ReconcileRate: 0
// there means no cap, which Jobs spells negative.
func reconcileRate(perSecond float64) float64 {
	if perSecond == 0 {
		return -1
	}
	return perSecond
}
