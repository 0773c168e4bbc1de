// Package service runs linkd's use cases over linkd.Store and linkd.Plaid:
// issuing link tokens, taking in what Link reports, exchanging public
// tokens exactly once (across replicas, through the store's exchange
// claims), repairing Items in update mode, renewing dead link tokens,
// applying webhooks and reporting conversion. It knows no transport: the
// server maps protos and callers onto it, and it keeps no state a second
// replica would need; what must hold across processes lives in the store.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/linkd/linkd"
)

// Duplicate Item policies: which existing Items a new connection is
// compared with before its public token is exchanged.
const (
	DuplicatesPerUser  = "user" // the same user's Items (the default)
	DuplicatesAllUsers = "all"  // every user's Items
	DuplicatesOff      = "off"  // no check
)

// DefaultLinkURL is Plaid's Link page for webviews.
const DefaultLinkURL = "https://cdn.plaid.com/link/v2/stable/link.html"

// LinkDefaults fill the link token options a request leaves out.
type LinkDefaults struct {
	ClientName   string
	Products     []string
	CountryCodes []string
	Language     string
	Webhook      string
}

// Config is what a Service needs.
type Config struct {
	Plaid  linkd.Plaid
	Store  linkd.Store
	Logger *slog.Logger
	// LinkURL is the Link webview page; DefaultLinkURL when empty.
	LinkURL string
	// Defaults fill missing link token options.
	Defaults LinkDefaults
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Duplicates is the duplicate Item policy; DuplicatesPerUser when empty.
	Duplicates string
	// Owner names this process in exchange claims and job leases; a
	// random id when empty. Two processes must never share one.
	Owner string
	// ClaimTTL is how long an exchange claim lives without renewal;
	// DefaultClaimTTL when zero.
	ClaimTTL time.Duration
	// Admit, when set, is asked before a public token is sent to Plaid:
	// an error (EUNAVAILABLE, such as a data disk nearly full) refuses the
	// exchange while nothing is spent, rather than after Plaid billed an
	// Item that linkd then cannot store.
	Admit func(ctx context.Context) error
	// SandboxLink completes Link sessions for CompleteSandboxLinkSession;
	// nil (the sandbox RPC is refused) unless linkd runs its emulator.
	SandboxLink linkd.SandboxLink
	// EmulatorItems puts Items in states Plaid's sandbox cannot produce,
	// for SetEmulatorItemState; nil (refused) unless linkd runs its
	// emulator.
	EmulatorItems linkd.EmulatorItems
	// Metrics counts exchanges and redirects; nil counts nothing.
	Metrics Metrics
}

// Metrics counts what the service does, for an operator. Its labels are
// fixed words (the Exchange* and Redirect* constants), never an id, so an
// implementation can use them as metric labels as they are.
type Metrics interface {
	// Exchange counts one exchange of a public token by its outcome.
	Exchange(outcome string)
	// Redirect counts one submitted redirect by its kind.
	Redirect(kind string)
}

// Exchange outcomes, for Metrics.
const (
	ExchangeCreated   = "created"   // Plaid exchanged it and the Item is stored
	ExchangeRepeat    = "repeat"    // already exchanged: the stored Item again
	ExchangeDuplicate = "duplicate" // refused before Plaid: the user has this Item
	ExchangeSpent     = "spent"     // the public token was used already
	ExchangeUnknown   = "unknown"   // Plaid did not answer, or another process still holds it
	ExchangeError     = "error"     // any other failure
)

// Redirect kinds, for Metrics.
const (
	RedirectConnected       = "connected"
	RedirectConnectedUpdate = "connected_update" // an update-mode session repaired its Item
	RedirectExit            = "exit"
	RedirectEvent           = "event"
)

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) Exchange(string) {}
func (noMetrics) Redirect(string) {}

// DefaultClaimTTL is how long an exchange claim outlives a holder that
// stopped renewing it (a crashed replica): another replica takes the
// exchange over after that. The holder renews at a third of it.
const DefaultClaimTTL = 15 * time.Second

// Service runs linkd's use cases. It is safe for concurrent use.
type Service struct {
	plaid      linkd.Plaid
	store      linkd.Store
	log        *slog.Logger
	linkURL    *url.URL
	defaults   LinkDefaults
	now        func() time.Time
	duplicates string
	owner      string
	claimTTL   time.Duration
	admit      func(ctx context.Context) error
	// sandboxLink is Config.SandboxLink.
	sandboxLink linkd.SandboxLink
	// emulatorItems is Config.EmulatorItems.
	emulatorItems linkd.EmulatorItems
	metrics       Metrics

	// exchanges serializes work on one public token inside this process,
	// an optimisation only: the store's claim is the guarantee.
	exchanges keyedMutex
	// pending holds the connections between their duplicate check and
	// their stored Item (lockDuplicateCheck).
	pending pendingLinks
	// renewing serializes renewals of one dead link token in this process,
	// so a burst of redirects on it costs one Plaid call.
	renewing keyedMutex
	// kept holds access tokens Plaid returned that are not stored yet,
	// by public token, so that a retry completes from them and no token
	// Plaid billed is dropped while the process lives.
	keptMu sync.Mutex
	kept   map[string]*keptExchange
	// inflight counts exchanges in progress, for Drain.
	inflight sync.WaitGroup
	// refreshNow wakes the refresh job after a new Item is queued.
	refreshNow chan struct{}
	// reconciling is where this process's reconcile walk stands.
	reconciling reconcileState
}

// New returns a Service, or EINVALID when the Link URL is not absolute or
// the duplicate policy is unknown.
func New(cfg Config) (*Service, error) {
	if cfg.LinkURL == "" {
		cfg.LinkURL = DefaultLinkURL
	}
	u, err := url.Parse(cfg.LinkURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, linkd.InvalidField("link_url", "link URL %q is not an absolute URL", cfg.LinkURL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch cfg.Duplicates {
	case "":
		cfg.Duplicates = DuplicatesPerUser
	case DuplicatesPerUser, DuplicatesAllUsers, DuplicatesOff:
	default:
		return nil, linkd.InvalidField("duplicate_items", "duplicate item policy must be %q, %q or %q", DuplicatesPerUser, DuplicatesAllUsers, DuplicatesOff)
	}
	if cfg.Owner == "" {
		cfg.Owner = NewOwnerID()
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Service{
		plaid:         cfg.Plaid,
		store:         cfg.Store,
		log:           cfg.Logger,
		linkURL:       u,
		defaults:      cfg.Defaults,
		now:           cfg.Now,
		duplicates:    cfg.Duplicates,
		owner:         cfg.Owner,
		claimTTL:      cfg.ClaimTTL,
		sandboxLink:   cfg.SandboxLink,
		emulatorItems: cfg.EmulatorItems,
		admit:         cfg.Admit,
		metrics:       cfg.Metrics,
		kept:          map[string]*keptExchange{},
		refreshNow:    make(chan struct{}, 1),
	}, nil
}

// NewOwnerID returns a random id for one process start.
func NewOwnerID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Environment returns the Plaid environment linkd talks to.
func (s *Service) Environment() string { return s.plaid.Environment() }

// Drain waits until no exchange is in progress, or ctx ends: an exchange
// goes on storing its Item after the caller is gone, so the store must
// stay open until it is done. It returns ctx's error when exchanges were
// still running.
func (s *Service) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keyedMutex is a set of mutexes by key, each existing only while in use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu    sync.Mutex
	users int
}

// lock locks key and returns the function that unlocks it.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.users--
		if l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// or returns v, or def when v is empty.
func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// orSlice returns v, or def when v is empty.
func orSlice(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}
