package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/linkd/linkd/store"
)

// restoreAdvice is what a refusal over a damaged or missing bbolt file
// tells the operator to do.
const restoreAdvice = "restore the latest backup of it to this path (one taken with `linkctl backup`, or a copy of the file made while linkd was stopped), " +
	"keeping this data directory's master.key, then start linkd again; keep the damaged file aside for investigation"

// checkDataDir refuses to start on a bbolt file that is missing or empty
// while the data directory's master key file exists: the key file is
// written at the first start, together with the database, so data existed
// and starting on an empty file would serve as if every Item were gone.
// Postgres, and keys given by LINKD_MASTER_KEYS, leave no such trace.
func (m *Main) checkDataDir() error {
	c := m.Config
	if c.DatabaseURL != "" || c.MasterKeys != "" {
		return nil
	}
	keyFile := filepath.Join(c.DataDir, "master.key")
	if _, err := os.Stat(keyFile); err != nil {
		return nil // a first start; an unreadable key file is the keyring's to report
	}
	fi, err := os.Stat(c.DBPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the database file %s is missing, but %s exists, so this data directory held data: linkd will not start empty; %s "+
			"(if it never held data, remove %s)", c.DBPath, keyFile, restoreAdvice, keyFile)
	case err != nil:
		return fmt.Errorf("database file %s: %w", c.DBPath, err)
	case fi.Size() == 0:
		return fmt.Errorf("the database file %s is empty (0 bytes), but %s exists, so this data directory held data: linkd will not start empty; %s "+
			"(if it never held data, remove both files)", c.DBPath, keyFile, restoreAdvice)
	}
	return nil
}

// checkStore runs the store's consistency check before linkd serves (for
// bbolt, every page of the file: about 4 s a GiB from a cold cache, 1.3 s
// warm, see RELIABILITY.md), so that a damaged file is refused at start
// with what to do, rather than found by the requests that read it.
func (m *Main) checkStore(ctx context.Context) error {
	start := time.Now()
	if err := m.db.Check(ctx); err != nil {
		if m.Config.DatabaseURL != "" {
			return fmt.Errorf("store check: %w", err)
		}
		return fmt.Errorf("the database file %s failed its consistency check: %w; %s", m.Config.DBPath, err, restoreAdvice)
	}
	m.log.Info("store consistency check passed", "store", m.storeName(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// damagedFile adds what to do to an error opening a damaged bbolt file.
func (m *Main) damagedFile(err error) error {
	if m.Config.DatabaseURL == "" && store.IsCorrupt(err) {
		return fmt.Errorf("%w; %s", err, restoreAdvice)
	}
	return err
}
