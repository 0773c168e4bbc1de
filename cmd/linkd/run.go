package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
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
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
	"github.com/linkd/linkd/store"
)

// Config is linkd's configuration, from flags with environment fallbacks.
type Config struct {
	GRPCAddr     string
	HTTPAddr     string
	DataDir      string
	DBPath       string
	LinkURL      string
	ClientName   string
	Products     string
	CountryCodes string
	Language     string
	Webhook      string
	APIKeys      string
	MasterKeys   string
	LogFormat    string
	// DuplicateItems is the duplicate Item policy: user, all or off.
	DuplicateItems string
	// Retention is how long Link sessions and webhooks are kept after they
	// were last seen; 0 keeps them forever.
	Retention time.Duration

	// End-user tokens: a JWKS (file or URL) and/or an HS256 secret, and the
	// issuer and audience every token must carry.
	JWTJWKS     string
	JWTHS256    string
	JWTIssuer   string
	JWTAudience string

	// TLS for both listeners when TLSCert and TLSKey are set; mutual TLS
	// when TLSClientCA is set too.
	TLSCert     string
	TLSKey      string
	TLSClientCA string

	PlaidClientID string
	PlaidSecret   string
	PlaidEnv      string
	PlaidBaseURL  string
	PlaidTimeout  time.Duration
	EmulatorAddr  string
}

// DefaultRetention is how long Link sessions and webhooks are kept by
// default: 90 days, enough for a quarter's conversion reports.
const DefaultRetention = 90 * 24 * time.Hour

// pruneEvery is how often the retention is applied while linkd runs.
const pruneEvery = time.Hour

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
	svc      *server.Server
	db       *store.DB
	plaid    *plaid.Client
	emulator *plaidemu.Emulator
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	grpcLn   net.Listener
	httpLn   net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// apiKeyPath is where a generated API key was stored, if one was.
	apiKeyPath string
}

// NewMain returns a Main with its defaults.
func NewMain() *Main {
	return &Main{LogOutput: os.Stderr}
}

// ParseFlags reads flags from args, each falling back to an environment
// variable read through getenv. It returns an error for unknown flags or
// inconsistent settings.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	c := &m.Config
	retention, err := time.ParseDuration(env("LINKD_RETENTION", DefaultRetention.String()))
	if err != nil {
		return fmt.Errorf("LINKD_RETENTION: %w", err)
	}
	fs := flag.NewFlagSet("linkd", flag.ContinueOnError)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("LINKD_GRPC_ADDR", "127.0.0.1:50051"), "gRPC listen address (LINKD_GRPC_ADDR)")
	fs.StringVar(&c.HTTPAddr, "http-addr", env("LINKD_HTTP_ADDR", "127.0.0.1:8080"), "REST and /healthz listen address (LINKD_HTTP_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", env("LINKD_DATA_DIR", "./data"), "directory for the database and generated keys (LINKD_DATA_DIR)")
	fs.StringVar(&c.DBPath, "db", env("LINKD_DB", ""), "bbolt database file (LINKD_DB); default <data-dir>/linkd.db")
	fs.StringVar(&c.LinkURL, "link-url", env("LINKD_LINK_URL", ""), "Link webview page (LINKD_LINK_URL); default Plaid's, or linkd's own page with the emulator")
	fs.StringVar(&c.ClientName, "client-name", env("LINKD_CLIENT_NAME", "linkd"), "default client_name shown in Link (LINKD_CLIENT_NAME)")
	fs.StringVar(&c.Products, "products", env("LINKD_PRODUCTS", "transactions"), "default Plaid products, comma-separated (LINKD_PRODUCTS)")
	fs.StringVar(&c.CountryCodes, "country-codes", env("LINKD_COUNTRY_CODES", "US"), "default country codes, comma-separated (LINKD_COUNTRY_CODES)")
	fs.StringVar(&c.Language, "language", env("LINKD_LANGUAGE", "en"), "default Link language (LINKD_LANGUAGE)")
	fs.StringVar(&c.Webhook, "webhook", env("LINKD_WEBHOOK", ""), "default webhook URL (LINKD_WEBHOOK)")
	fs.StringVar(&c.DuplicateItems, "duplicate-items", env("LINKD_DUPLICATE_ITEMS", server.DuplicatesPerUser), "refuse a link that duplicates an Item of the same user (user), of any user (all), or never (off) (LINKD_DUPLICATE_ITEMS)")
	fs.DurationVar(&c.Retention, "retention", retention, "keep Link sessions and webhooks this long after last seen, 0 for ever (LINKD_RETENTION)")
	fs.StringVar(&c.LogFormat, "log-format", env("LINKD_LOG_FORMAT", "text"), "text or json (LINKD_LOG_FORMAT)")
	fs.StringVar(&c.EmulatorAddr, "emulator-addr", env("LINKD_EMULATOR_ADDR", "127.0.0.1:0"), "listen address of the embedded Plaid emulator (LINKD_EMULATOR_ADDR)")
	fs.StringVar(&c.PlaidBaseURL, "plaid-base-url", env("PLAID_BASE_URL", ""), "override Plaid's API URL, e.g. a separately run emulator (PLAID_BASE_URL)")
	timeout, err := time.ParseDuration(env("PLAID_TIMEOUT", "15s"))
	if err != nil {
		return fmt.Errorf("PLAID_TIMEOUT: %w", err)
	}
	fs.DurationVar(&c.PlaidTimeout, "plaid-timeout", timeout, "bound on one HTTP request to Plaid (PLAID_TIMEOUT)")
	fs.StringVar(&c.JWTJWKS, "jwt-jwks", env("LINKD_JWT_JWKS", ""), "JWKS file or https URL verifying end-user tokens (LINKD_JWT_JWKS)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", env("LINKD_JWT_ISSUER", ""), "required iss of end-user tokens (LINKD_JWT_ISSUER)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", env("LINKD_JWT_AUDIENCE", ""), "required aud of end-user tokens (LINKD_JWT_AUDIENCE)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("LINKD_TLS_CERT", ""), "PEM certificate chain: serve gRPC and HTTP over TLS (LINKD_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("LINKD_TLS_KEY", ""), "PEM private key of -tls-cert (LINKD_TLS_KEY)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", env("LINKD_TLS_CLIENT_CA", ""), "PEM CA bundle: require client certificates it verifies, mutual TLS (LINKD_TLS_CLIENT_CA)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Retention < 0 {
		return errors.New("-retention must not be negative")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// Secrets come only from the environment: flags show up in ps.
	c.APIKeys = getenv("LINKD_API_KEYS")
	c.MasterKeys = getenv("LINKD_MASTER_KEYS")
	c.JWTHS256 = getenv("LINKD_JWT_HS256_SECRET")
	c.PlaidClientID = getenv("PLAID_CLIENT_ID")
	c.PlaidSecret = getenv("PLAID_SECRET")
	c.PlaidEnv = env("PLAID_ENV", linkd.PlaidSandbox)
	if c.DBPath == "" {
		c.DBPath = filepath.Join(c.DataDir, "linkd.db")
	}
	if (c.PlaidClientID == "") != (c.PlaidSecret == "") {
		return errors.New("set both PLAID_CLIENT_ID and PLAID_SECRET, or neither to use the embedded emulator")
	}
	if c.PlaidEnv != linkd.PlaidSandbox && c.PlaidEnv != linkd.PlaidProduction {
		return fmt.Errorf("PLAID_ENV must be %q or %q", linkd.PlaidSandbox, linkd.PlaidProduction)
	}
	userTokens := c.JWTJWKS != "" || c.JWTHS256 != ""
	if userTokens && (c.JWTIssuer == "" || c.JWTAudience == "") {
		return errors.New("end-user tokens need -jwt-issuer and -jwt-audience (LINKD_JWT_ISSUER, LINKD_JWT_AUDIENCE)")
	}
	if !userTokens && (c.JWTIssuer != "" || c.JWTAudience != "") {
		return errors.New("-jwt-issuer and -jwt-audience need -jwt-jwks (LINKD_JWT_JWKS) or LINKD_JWT_HS256_SECRET")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("set both -tls-cert and -tls-key (LINKD_TLS_CERT, LINKD_TLS_KEY), or neither")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("-tls-client-ca (LINKD_TLS_CLIENT_CA) needs -tls-cert and -tls-key")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return errors.New("-log-format must be text or json")
	}
	return nil
}

// Run opens the store, connects to Plaid (starting the emulator when no
// credentials are set) and starts serving gRPC and HTTP. It returns once
// both listen; Close stops them.
func (m *Main) Run(ctx context.Context) (err error) {
	c := m.Config
	if c.LogFormat == "json" {
		m.log = slog.New(slog.NewJSONHandler(m.LogOutput, nil))
	} else {
		m.log = slog.New(slog.NewTextHandler(m.LogOutput, nil))
	}
	// What Run starts lives until Close, not until the caller's context
	// ends: main cancels that on SIGTERM, and Close must still drain HTTP
	// calls through the gateway's connection before it goes.
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	keys, err := m.masterKeys()
	if err != nil {
		return err
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.db, err = store.Open(c.DBPath, store.Options{Keys: keys, Now: m.Now}); err != nil {
		return fmt.Errorf("open store %s: %w", c.DBPath, err)
	}
	m.resealInBackground(ctx)
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
	}
	m.svc, err = server.New(server.Config{
		Plaid:   pc,
		Store:   m.db,
		Logger:  m.log,
		LinkURL: linkURL,
		Defaults: server.LinkDefaults{
			ClientName:   c.ClientName,
			Products:     splitList(c.Products),
			CountryCodes: splitList(c.CountryCodes),
			Language:     c.Language,
			Webhook:      c.Webhook,
		},
		Duplicates: c.DuplicateItems,
		Now:        m.Now,
	})
	if err != nil {
		return err
	}
	users, err := m.userTokenVerifier()
	if err != nil {
		return err
	}
	if m.grpc, m.health, err = server.NewGRPCServer(m.svc, server.GRPCOptions{APIKeys: apiKeys, Users: users, Logger: m.log, TLS: tlsConfig}); err != nil {
		return err
	}
	gatewayLn := server.NewGatewayListener()
	routes = append(routes, m.svc.WebhookRoute())
	handler, err := server.NewHTTPHandler(ctx, gatewayLn, routes...)
	if err != nil {
		return err
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
	m.wg.Add(3)
	for _, ln := range []net.Listener{m.grpcLn, gatewayLn} {
		go func() {
			defer m.wg.Done()
			if err := m.grpc.Serve(ln); err != nil {
				m.log.Error("gRPC server stopped", "err", err)
			}
		}()
	}
	if c.Retention > 0 {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.prune(ctx) // at start, so a restart after a long stop catches up
			t := time.NewTicker(pruneEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					m.prune(ctx)
				}
			}
		}()
	}
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
	m.log.Info("linkd serving", "grpc", m.GRPCAddr(), "http", m.HTTPAddr(), "db", c.DBPath, "plaid_env", pc.Environment(),
		"tls", tlsConfig != nil, "mutual_tls", c.TLSClientCA != "")
	if m.emulator != nil {
		m.log.Info("Link page (emulator): open the webview_url that POST /v1/link/token/create returns in a browser or webview", "link_url", linkURL)
	}
	if m.apiKeyPath != "" {
		m.log.Info("no LINKD_API_KEYS set: using the API key stored in "+m.apiKeyPath, "path", m.apiKeyPath)
	}
	return nil
}

// prune deletes the sessions and webhooks older than the retention. A
// failure is logged: the next run tries again.
func (m *Main) prune(ctx context.Context) {
	sessions, webhooks, err := m.db.Prune(ctx, m.Now().Add(-m.Config.Retention))
	if err != nil {
		m.log.Error("pruning old sessions and webhooks", "err", err)
		return
	}
	if sessions+webhooks > 0 {
		m.log.Info("pruned old sessions and webhooks", "sessions", sessions, "webhooks", webhooks, "retention", m.Config.Retention)
	}
}

// plaidClient returns the Plaid client: for real Plaid when credentials are
// set, else for the embedded emulator, which it starts. Both take the same
// code path through plaid-go.
func (m *Main) plaidClient() (*plaid.Client, error) {
	c := m.Config
	cfg := plaid.Config{ClientID: c.PlaidClientID, Secret: c.PlaidSecret, Env: c.PlaidEnv, BaseURL: c.PlaidBaseURL, Timeout: c.PlaidTimeout}
	if c.PlaidClientID == "" {
		cfg.ClientID, cfg.Secret, cfg.Env = "linkd-emulator-"+randomToken(8), randomToken(24), linkd.PlaidSandbox
		emu, err := plaidemu.Start(c.EmulatorAddr, plaidemu.Options{ClientID: cfg.ClientID, Secret: cfg.Secret, Now: m.Now, Logger: m.log.With("component", "plaidemu")})
		if err != nil {
			return nil, fmt.Errorf("start the embedded Plaid emulator: %w", err)
		}
		m.emulator = emu
		cfg.BaseURL = emu.URL()
		m.log.Info("no PLAID_CLIENT_ID/PLAID_SECRET set: using the embedded Plaid emulator (sandbox data, nothing leaves this machine)", "plaid_url", emu.URL())
	}
	return plaid.New(cfg)
}

// masterKeys returns the keys that seal access tokens: LINKD_MASTER_KEYS, or
// a key file in the data directory, generated on first start.
func (m *Main) masterKeys() (store.Keyring, error) {
	if m.Config.MasterKeys != "" {
		return store.ParseMasterKeys(m.Config.MasterKeys)
	}
	return store.LoadOrCreateKeyFile(filepath.Join(m.Config.DataDir, "master.key"))
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

// Close stops serving, letting calls in flight finish for up to 10 seconds,
// then closes the emulator and the store. It returns the first error.
func (m *Main) Close() error {
	if m.health != nil {
		m.health.Shutdown()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	m.wg.Wait()
	if m.svc != nil {
		// Exchanges outlive their RPC while they store the Item Plaid made;
		// closing the store under them would lose its access token.
		drain, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		if err := m.svc.Drain(drain); err != nil {
			m.log.Error("exchanges still running at shutdown", "err", err)
		}
		cancel()
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
