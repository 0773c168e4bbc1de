package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/postgres"
	"github.com/linkd/linkd/seal"
	"github.com/linkd/linkd/store"
)

// storeProbeEvery is how often readiness writes to the store.
const storeProbeEvery = 5 * time.Second

// keyring returns the master keys that seal access tokens:
// LINKD_MASTER_KEYS (with LINKD_MASTER_KEY_CURRENT), or a key file in the
// data directory, generated on first start (bbolt only: replicas must
// share their keys, see ParseFlags).
func (m *Main) keyring() (seal.Keyring, error) {
	if m.Config.MasterKeys != "" {
		return seal.ParseMasterKeys(m.Config.MasterKeys, m.Config.MasterKeyCurrent)
	}
	return seal.LoadOrCreateKeyFile(filepath.Join(m.Config.DataDir, "master.key"))
}

// openStore opens the configured store: Postgres when LINKD_DATABASE_URL
// is set, else the bbolt file.
func (m *Main) openStore(ctx context.Context) (linkd.Store, error) {
	keys, err := m.keyring()
	if err != nil {
		return nil, err
	}
	sealer, err := seal.New(keys)
	if err != nil {
		return nil, err
	}
	if m.Config.DatabaseURL != "" {
		db, err := postgres.Open(ctx, m.Config.DatabaseURL, postgres.Options{Sealer: sealer, Now: m.Now})
		if err != nil {
			return nil, fmt.Errorf("open the Postgres store: %w", err)
		}
		return db, nil
	}
	opts := store.Options{Sealer: sealer, Now: m.Now}
	if m.metrics != nil {
		opts.OnCommit = m.metrics.ObserveCommit
	}
	db, err := store.Open(m.Config.DBPath, opts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", m.Config.DBPath, err)
	}
	return db, nil
}

// storeName says which store linkd uses, for the logs: never the
// database URL, which holds a password.
func (m *Main) storeName() string {
	if m.Config.DatabaseURL != "" {
		return "postgres"
	}
	return m.Config.DBPath
}

// checkKeys refuses to start when the keyring cannot open the access
// tokens already stored: a missing or replaced master key would otherwise
// serve, and every stored Item would fail later. It opens one token per
// key id in use and names the key ids that do not open.
func (m *Main) checkKeys(ctx context.Context) error {
	inUse, err := m.db.SealedKeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("read the master key ids in use: %w", err)
	}
	var bad []string
	for kid, itemID := range inUse {
		if _, err := m.db.AccessToken(ctx, itemID); err != nil {
			bad = append(bad, kid)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("the master keys cannot open access tokens sealed with key id(s) %s: "+
		"start linkd with the keys that sealed them (LINKD_MASTER_KEYS, or the master.key file of this data directory); "+
		"a new key cannot recover tokens sealed with a lost one", strings.Join(bad, ", "))
}

// readiness is what /readyz and gRPC health report: ready while the store
// takes writes, the data disk has room and shutdown has not begun.
type readiness struct {
	mu       sync.Mutex
	store    error // the last store probe's failure
	disk     error // too little free space
	stopping bool
}

// errShuttingDown is readiness's answer once shutdown has begun.
var errShuttingDown = errors.New("shutting down")

// errStoreHung is the store probe's failure while its write has not
// returned within the probe's timeout.
var errStoreHung = fmt.Errorf("a write has not returned in %s", storeProbeEvery/2)

// err returns why linkd is not ready, or nil.
func (r *readiness) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopping:
		return errShuttingDown
	case r.store != nil:
		return fmt.Errorf("store not writable: %w", r.store)
	case r.disk != nil:
		return r.disk
	}
	return nil
}

// watchStore reports readiness in gRPC health (and so /healthz) and
// /readyz until ctx ends, probing at once and then every storeProbeEvery:
// NOT_SERVING while a write to the store fails or the data directory's
// disk has less than MinFreeDisk free, SERVING again once both are fine.
func (m *Main) watchStore(ctx context.Context) {
	owner := "probe/" + randomToken(8)
	serving := true
	t := time.NewTicker(storeProbeEvery)
	defer t.Stop()
	// The write runs apart from this loop: bbolt does not heed a context,
	// and a write stuck in the store (a disk that stopped answering, a
	// commit waiting on a remap) used to stop this loop with it, so
	// readiness kept its last answer, SERVING, while every call hung. A
	// write still running after the probe's timeout is a failure, and no
	// second one starts until it ends. A write that returned after its
	// timeout answers nothing: the next tick probes afresh (a store that
	// takes longer than the timeout for every write stays not ready, and
	// one that recovered is ready again at that tick).
	var pending chan error
	for {
		var storeErr error
		if pending != nil {
			select {
			case <-pending: // late: stale
				pending = nil
			default:
				storeErr = errStoreHung
			}
		}
		if pending == nil {
			pending = make(chan error, 1)
			go func(done chan<- error) {
				pctx, cancel := context.WithTimeout(ctx, storeProbeEvery/2)
				defer cancel()
				_, err := m.db.TryLease(pctx, owner, owner, m.Now(), time.Minute)
				done <- err
			}(pending)
			wait := time.NewTimer(storeProbeEvery / 2)
			select {
			case storeErr = <-pending:
				pending = nil
			case <-wait.C:
				storeErr = errStoreHung
			case <-ctx.Done():
			}
			wait.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		diskErr := checkFreeDisk(m.Config.DataDir, m.Config.MinFreeDisk)
		m.ready.mu.Lock()
		m.ready.store, m.ready.disk = storeErr, diskErr
		m.ready.mu.Unlock()
		err := m.ready.err()
		if ok := err == nil; ok != serving {
			serving = ok
			st := healthpb.HealthCheckResponse_SERVING
			if !ok {
				st = healthpb.HealthCheckResponse_NOT_SERVING
				if errors.Is(err, errShuttingDown) {
					// Expected, and announced when shutdown began.
					m.log.Debug("not ready: shutting down")
				} else {
					m.log.Error("not ready: reporting NOT_SERVING", "err", err)
				}
			} else {
				m.log.Info("ready again: reporting SERVING")
			}
			// After health.Shutdown these change nothing: shutdown wins.
			m.health.SetServingStatus("", st)
			m.health.SetServingStatus(linkdv1.LinkService_ServiceDesc.ServiceName, st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkFreeDisk returns an error when the disk holding dir has less than
// min bytes free to unprivileged writers (what bbolt gets), or cannot be
// asked.
func checkFreeDisk(dir string, min int64) error {
	if min <= 0 {
		return nil
	}
	f, err := freeDisk(dir)
	if err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if free := int64(f); free < min {
		return fmt.Errorf("data disk nearly full: %d MiB free in %s, below -min-free-disk %d MiB", free>>20, dir, min>>20)
	}
	return nil
}
