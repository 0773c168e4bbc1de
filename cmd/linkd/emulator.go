package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/linkd/linkd/linkpage"
	"github.com/linkd/linkd/plaidemu"
)

// The credentials `linkd emulator` accepts when PLAID_CLIENT_ID and
// PLAID_SECRET are unset. They guard fake sandbox data only, and every
// replica pointed at the emulator needs them, so they are fixed and known.
const (
	DefaultEmulatorClientID = "linkd-emulator"
	DefaultEmulatorSecret   = "linkd-emulator-secret"
)

// emulatorStateFile is the file in the data directory where the embedded
// emulator keeps its Items, so that the Items linkd stores still exist at
// the emulator after a restart.
const emulatorStateFile = "emulator.json"

// EmulatorConfig is the configuration of `linkd emulator`.
type EmulatorConfig struct {
	// Addr is the listen address of the emulator and its Link page.
	Addr string
	// StatePath is the file that keeps the emulator's Items across
	// restarts; "" keeps them in memory only.
	StatePath string
	ClientID  string
	Secret    string
	// DefaultSecret records that Secret is DefaultEmulatorSecret because
	// PLAID_SECRET was unset, so the start message can say so.
	DefaultSecret bool
	// LogLevel is debug, info, warn or error; debug logs every request,
	// info only those answered with an error.
	LogLevel string
}

// EmulatorMain is `linkd emulator`: the Plaid emulator on a listener of its
// own, with linkd's Link page beside its API as Plaid serves its own page,
// so that several linkd replicas started with -plaid-base-url and -link-url
// share one emulator. ParseFlags, then Run, then Close; tests run it on
// port 0.
type EmulatorMain struct {
	Config EmulatorConfig
	// LogOutput receives the logs; os.Stderr by default.
	LogOutput io.Writer

	log  *slog.Logger
	emu  *plaidemu.Emulator
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// NewEmulatorMain returns an EmulatorMain with its defaults.
func NewEmulatorMain() *EmulatorMain {
	return &EmulatorMain{LogOutput: os.Stderr}
}

// ParseFlags reads the flags of `linkd emulator` from args, falling back to
// environment variables read through getenv; the credentials come only from
// PLAID_CLIENT_ID and PLAID_SECRET. It returns an error for unknown flags or
// arguments, or when only one of the two credentials is set.
func (m *EmulatorMain) ParseFlags(args []string, getenv func(string) string) error {
	c := &m.Config
	addr := getenv("LINKD_EMULATOR_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	fs := flag.NewFlagSet("linkd emulator", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", addr, "listen address of the Plaid API and the Link page (LINKD_EMULATOR_ADDR)")
	fs.StringVar(&c.StatePath, "state", getenv("LINKD_EMULATOR_STATE"), "file that keeps the emulator's Items across restarts, written 0600; empty keeps them in memory (LINKD_EMULATOR_STATE)")
	level := getenv("LINKD_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	fs.StringVar(&c.LogLevel, "log-level", level, "debug, info, warn or error; debug logs every request, info those answered with an error (LINKD_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return errors.New("-log-level must be debug, info, warn or error")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.ClientID, c.Secret = getenv("PLAID_CLIENT_ID"), getenv("PLAID_SECRET")
	if (c.ClientID == "") != (c.Secret == "") {
		return errors.New("set both PLAID_CLIENT_ID and PLAID_SECRET, or neither for the defaults")
	}
	if c.ClientID == "" {
		c.ClientID, c.Secret, c.DefaultSecret = DefaultEmulatorClientID, DefaultEmulatorSecret, true
	}
	return nil
}

// Run listens and serves Plaid's API and the Link page until Close. It
// returns once it listens, or an error when it cannot.
func (m *EmulatorMain) Run(ctx context.Context) error {
	c := m.Config
	var level slog.Level
	level.UnmarshalText([]byte(c.LogLevel)) // checked by ParseFlags
	m.log = slog.New(slog.NewTextHandler(m.LogOutput, &slog.HandlerOptions{Level: level}))
	emu, err := plaidemu.Open(plaidemu.Options{ClientID: c.ClientID, Secret: c.Secret, Logger: m.log.With("component", "plaidemu"), StatePath: c.StatePath})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("emulator listener: %w", err)
	}
	m.ln, m.emu = ln, emu
	mux := http.NewServeMux()
	// Plaid's API paths and the page's tree do not overlap: the page lives
	// under /link/v2/stable/, the API at /link/token/create and siblings.
	mux.Handle(linkpage.Prefix, newEmulatorLinkPage(m.emu, m.log))
	mux.Handle("/", m.emu)
	m.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("emulator server stopped", "err", err)
		}
	}()
	secret := "PLAID_SECRET"
	if c.DefaultSecret {
		secret = "the default (PLAID_SECRET unset)"
	}
	m.log.Info("Plaid emulator serving: start linkd with PLAID_CLIENT_ID, PLAID_SECRET, PLAID_ENV=sandbox, -plaid-base-url plaid_url and -link-url link_url",
		"plaid_url", m.URL(), "link_url", m.LinkURL(), "client_id", c.ClientID, "secret", secret, "state", c.StatePath)
	return nil
}

// URL returns the base URL of the emulated Plaid API, for linkd's
// -plaid-base-url, once Run has returned.
func (m *EmulatorMain) URL() string { return "http://" + browsableAddr(m.ln.Addr()) }

// LinkURL returns the Link page's URL, for linkd's -link-url, once Run has
// returned.
func (m *EmulatorMain) LinkURL() string { return m.URL() + linkpage.Path }

// Close stops serving, letting requests in flight finish for up to 10
// seconds, and drops the emulator's webhook connections. It returns the
// server's shutdown error.
func (m *EmulatorMain) Close() error {
	if m.http == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.http.Shutdown(ctx)
	<-m.done
	return errors.Join(err, m.emu.Close())
}

// runEmulator is `linkd emulator args...` until ctx ends (SIGINT, SIGTERM).
// It returns the process exit code.
func runEmulator(ctx context.Context, args []string) int {
	m := NewEmulatorMain()
	if err := m.ParseFlags(args, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "linkd emulator:", err)
		return 2
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "linkd emulator:", err)
		return 1
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "linkd emulator: shutdown:", err)
		return 1
	}
	return 0
}
