package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/store"
)

// rotateBatch is how many access tokens one rotation transaction re-seals:
// small enough that a writer waiting behind it waits little.
const rotateBatch = 100

// RotateKey re-seals every access token under the newest master key, for
// `linkd rotate-key`. With LINKD_MASTER_KEYS set, the newest key is its last
// (add the new key there first); with the key file, RotateKey adds a new
// random key to it. linkd must be stopped: bbolt lets one process open the
// file. A running linkd does the same re-sealing in the background when it
// starts with a new key, while it serves. It reports to out and returns an
// error when linkd is running, the keys do not parse, or a write fails.
func (m *Main) RotateKey(ctx context.Context, out io.Writer) error {
	c := m.Config
	keys, err := m.masterKeys()
	if err != nil {
		return err
	}
	db, err := store.Open(c.DBPath, store.Options{Keys: keys})
	if linkd.ErrorCode(err) == linkd.EUNAVAILABLE {
		return fmt.Errorf("%s is in use by a running linkd: stop it first, or restart it with the new key and it re-seals in the background", c.DBPath)
	} else if err != nil {
		return err
	}
	if c.MasterKeys == "" {
		path := filepath.Join(c.DataDir, "master.key")
		if keys, err = store.AddKeyToFile(path); err != nil {
			db.Close()
			return err
		}
		fmt.Fprintf(out, "added master key %s to %s\n", keys.Current, path)
		// Reopen with the new ring; the old keys stay in it.
		if err := db.Close(); err != nil {
			return err
		}
		if db, err = store.Open(c.DBPath, store.Options{Keys: keys}); err != nil {
			return err
		}
	}
	n, err := db.RotateKeys(ctx, rotateBatch)
	err = errors.Join(err, db.Close())
	fmt.Fprintf(out, "re-sealed %d access tokens under master key %s\n", n, keys.Current)
	return err
}

// resealInBackground re-seals, while linkd serves, access tokens sealed
// under an older master key; it stops when ctx ends.
func (m *Main) resealInBackground(ctx context.Context) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		n, err := m.db.RotateKeys(ctx, rotateBatch)
		if err != nil && ctx.Err() == nil {
			m.log.Error("re-sealing access tokens under the current master key failed", "resealed", n, "err", err)
		} else if n > 0 {
			m.log.Info("re-sealed access tokens under the current master key", "resealed", n)
		}
	}()
}
