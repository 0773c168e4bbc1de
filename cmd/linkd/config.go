package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/server"
	"github.com/linkd/linkd/service"
	"github.com/linkd/linkd/telemetry"
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
	// MasterKeyCurrent names the key of MasterKeys that seals new tokens;
	// the last one when empty. Rotation in a rolling deploy adds a key in
	// one deploy and makes it current in the next.
	MasterKeyCurrent string
	// DatabaseURL selects Postgres as the shared store (postgres://...);
	// empty keeps the bbolt file at DBPath. Environment only: it holds a
	// password.
	DatabaseURL string
	// UserRate and UserBurst bound each end user's calls of the methods
	// that call Plaid; a zero UserRate turns the bound off.
	UserRate  float64
	UserBurst int
	LogFormat string
	// CORSOrigins are the browser origins allowed to call the REST API;
	// none by default.
	CORSOrigins string
	// DuplicateItems is the duplicate Item policy: user, all or off.
	DuplicateItems string
	// Retention is how long Link sessions are kept after linkd last saw
	// them, webhooks after they were received and link tokens after they
	// expired; 0 keeps them forever.
	Retention time.Duration
	// ReconcileEvery is how often each Item is compared with Plaid's
	// /item/get at most; ReconcileRate caps those background Plaid calls
	// (and webhook moves) per second, 0 for no cap.
	ReconcileEvery time.Duration
	ReconcileRate  float64

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

	// AdminAddr serves /metrics, /debug/pprof, /livez, /readyz and
	// /backup: keep it off the public network.
	AdminAddr string
	// Metrics is false with LINKD_METRICS=off: no collection at all (for
	// measuring what it costs).
	Metrics bool
	// Tracing is set when the OTEL_* variables ask for exported traces.
	Tracing bool
	// LogLevel is debug, info, warn or error; warn drops access logs.
	LogLevel string
	// MinFreeDisk is the free space on the data directory's disk below
	// which linkd reports not ready and refuses exchanges before Plaid is
	// called (bbolt only: Postgres reports a full disk itself).
	MinFreeDisk int64
	// DrainDelay is how long linkd keeps serving after SIGTERM while
	// reporting NOT_SERVING, so load balancers stop sending first.
	DrainDelay time.Duration
	// ShutdownTimeout bounds the whole shutdown after DrainDelay: HTTP
	// and gRPC calls in flight and exchanges being stored.
	ShutdownTimeout time.Duration

	PlaidClientID string
	PlaidSecret   string
	PlaidEnv      string
	PlaidBaseURL  string
	PlaidTimeout  time.Duration
	EmulatorAddr  string
	// EmulatorLinkWebhooks makes the emulator send LINK webhooks for
	// webview sessions too, as Plaid does when the account setting is on.
	EmulatorLinkWebhooks bool
}

// DefaultRetention is how long Link sessions and webhooks are kept by
// default: 90 days, enough for a quarter's conversion reports.
const DefaultRetention = 90 * 24 * time.Hour

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
	if c.UserRate, err = strconv.ParseFloat(env("LINKD_USER_RATE", strconv.FormatFloat(server.DefaultUserRateLimit.PerSecond, 'g', -1, 64)), 64); err != nil || !finiteRate(c.UserRate) {
		return fmt.Errorf("LINKD_USER_RATE must be calls per second, 0 or more")
	}
	if c.UserBurst, err = strconv.Atoi(env("LINKD_USER_BURST", strconv.Itoa(server.DefaultUserRateLimit.Burst))); err != nil || c.UserBurst < 1 {
		return fmt.Errorf("LINKD_USER_BURST must be a whole number, 1 or more")
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
	fs.StringVar(&c.DuplicateItems, "duplicate-items", env("LINKD_DUPLICATE_ITEMS", service.DuplicatesPerUser), "refuse a link that duplicates an Item of the same user (user), of any user (all), or never (off) (LINKD_DUPLICATE_ITEMS)")
	fs.DurationVar(&c.Retention, "retention", retention, "keep Link sessions this long after linkd last saw them, webhooks after received and link tokens after expiry, 0 for ever (LINKD_RETENTION)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", env("LINKD_CORS_ORIGINS", ""), "comma-separated browser origins allowed to call the REST API, e.g. https://app.example.com; none by default (LINKD_CORS_ORIGINS)")
	fs.StringVar(&c.LogFormat, "log-format", env("LINKD_LOG_FORMAT", "text"), "text or json (LINKD_LOG_FORMAT)")
	fs.StringVar(&c.EmulatorAddr, "emulator-addr", env("LINKD_EMULATOR_ADDR", "127.0.0.1:0"), "listen address of the embedded Plaid emulator (LINKD_EMULATOR_ADDR)")
	fs.BoolVar(&c.EmulatorLinkWebhooks, "emulator-link-webhooks", env("LINKD_EMULATOR_LINK_WEBHOOKS", "") == "true",
		"the embedded emulator sends LINK webhooks for webview sessions too, as Plaid's account setting does (LINKD_EMULATOR_LINK_WEBHOOKS=true)")
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
	fs.StringVar(&c.AdminAddr, "admin-addr", env("LINKD_ADMIN_ADDR", "127.0.0.1:9090"), "metrics, pprof, probes and backup listen address; keep it private (LINKD_ADMIN_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", env("LINKD_LOG_LEVEL", "info"), "debug, info, warn or error; warn drops the access log (LINKD_LOG_LEVEL)")
	reconcileEvery, err := time.ParseDuration(env("LINKD_RECONCILE_EVERY", service.DefaultReconcileEvery.String()))
	if err != nil {
		return fmt.Errorf("LINKD_RECONCILE_EVERY: %w", err)
	}
	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", reconcileEvery, "compare each Item with Plaid's /item/get at most this often, catching lost webhooks (LINKD_RECONCILE_EVERY)")
	reconcileRate, err := strconv.ParseFloat(env("LINKD_RECONCILE_RATE", strconv.FormatFloat(service.DefaultReconcileRate, 'g', -1, 64)), 64)
	if err != nil {
		return fmt.Errorf("LINKD_RECONCILE_RATE: %w", err)
	}
	fs.Float64Var(&c.ReconcileRate, "reconcile-rate", reconcileRate, "at most this many background Plaid calls per second for reconciling Items and moving their webhooks, 0 for no cap (LINKD_RECONCILE_RATE)")
	minFree := fs.String("min-free-disk", env("LINKD_MIN_FREE_DISK", "64MiB"), "report not ready, and refuse exchanges before Plaid is called, when the data directory's disk has less free space (LINKD_MIN_FREE_DISK)")
	drain, err := time.ParseDuration(env("LINKD_DRAIN_DELAY", "5s"))
	if err != nil {
		return fmt.Errorf("LINKD_DRAIN_DELAY: %w", err)
	}
	fs.DurationVar(&c.DrainDelay, "drain-delay", drain, "after SIGTERM, keep serving while reporting NOT_SERVING this long, for load balancers to deregister (LINKD_DRAIN_DELAY)")
	shutdown, err := time.ParseDuration(env("LINKD_SHUTDOWN_TIMEOUT", "30s"))
	if err != nil {
		return fmt.Errorf("LINKD_SHUTDOWN_TIMEOUT: %w", err)
	}
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", shutdown, "bound on shutdown after the drain delay: HTTP, gRPC and exchanges being stored (LINKD_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.MinFreeDisk, err = parseSize(*minFree); err != nil {
		return fmt.Errorf("-min-free-disk: %w", err)
	}
	if c.DrainDelay < 0 || c.ShutdownTimeout <= 0 {
		return errors.New("-drain-delay must not be negative and -shutdown-timeout must be positive")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return errors.New("-log-level must be debug, info, warn or error")
	}
	c.Tracing = telemetry.TracingEnabled(getenv)
	switch v := getenv("LINKD_METRICS"); v {
	case "", "on":
		c.Metrics = true
	case "off":
	default:
		return errors.New("LINKD_METRICS must be on or off")
	}
	if c.Retention < 0 {
		return errors.New("-retention must not be negative")
	}
	if c.ReconcileEvery <= 0 || !finiteRate(c.ReconcileRate) {
		return errors.New("-reconcile-every must be positive and -reconcile-rate not negative")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// Secrets come only from the environment: flags show up in ps.
	c.APIKeys = getenv("LINKD_API_KEYS")
	c.MasterKeys = getenv("LINKD_MASTER_KEYS")
	c.MasterKeyCurrent = getenv("LINKD_MASTER_KEY_CURRENT")
	c.DatabaseURL = getenv("LINKD_DATABASE_URL")
	c.JWTHS256 = getenv("LINKD_JWT_HS256_SECRET")
	c.PlaidClientID = getenv("PLAID_CLIENT_ID")
	c.PlaidSecret = getenv("PLAID_SECRET")
	c.PlaidEnv = getenv("PLAID_ENV")
	if c.DBPath == "" {
		c.DBPath = filepath.Join(c.DataDir, "linkd.db")
	}
	if c.DatabaseURL != "" {
		// Replicas share the store: what one process would generate for
		// itself (an API key file, a master key file) would differ
		// between them.
		if c.APIKeys == "" || c.MasterKeys == "" {
			return errors.New("with LINKD_DATABASE_URL (a store shared by replicas), set LINKD_API_KEYS and LINKD_MASTER_KEYS: replicas cannot each generate their own")
		}
		if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
			return errors.New("LINKD_DATABASE_URL must be a postgres:// URL")
		}
	}
	if c.MasterKeyCurrent != "" && c.MasterKeys == "" {
		return errors.New("LINKD_MASTER_KEY_CURRENT needs LINKD_MASTER_KEYS")
	}
	if (c.PlaidClientID == "") != (c.PlaidSecret == "") {
		return errors.New("set both PLAID_CLIENT_ID and PLAID_SECRET, or neither to use the embedded emulator")
	}
	switch {
	case c.PlaidEnv != "" && c.PlaidEnv != linkd.PlaidSandbox && c.PlaidEnv != linkd.PlaidProduction:
		return fmt.Errorf("PLAID_ENV must be %q or %q", linkd.PlaidSandbox, linkd.PlaidProduction)
	case c.PlaidEnv != "" && c.PlaidClientID == "":
		// Naming an environment asks for real Plaid: starting the emulator
		// instead would serve fake banks to real users.
		return fmt.Errorf("PLAID_ENV=%s needs PLAID_CLIENT_ID and PLAID_SECRET; unset PLAID_ENV (and both) to run the embedded emulator", c.PlaidEnv)
	case c.PlaidEnv == "":
		// With credentials and no PLAID_ENV, sandbox, as before; without
		// credentials, the emulator, which speaks sandbox.
		c.PlaidEnv = linkd.PlaidSandbox
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

// parseSize reads a byte count: a number with an optional KiB, MiB or GiB
// suffix (or none, for bytes).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 64MiB", s)
	}
	return n * mult, nil
}

// finiteRate reports whether r is a rate per second a setting may take: 0 or
// more and finite. strconv.ParseFloat reads "NaN" and "Inf" too: a NaN
// rate is not above 0, so it turned a limit off without a word.
func finiteRate(r float64) bool { return r >= 0 && !math.IsInf(r, 1) }
