package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/seal"
	"github.com/linkd/linkd/store"
)

// rotateBatch is how many access tokens one rotation transaction re-seals:
// small enough that a writer waiting behind it waits little.
const rotateBatch = 100

// RotateKey re-seals every access token under the current master key, for
// `linkd rotate-key` on the embedded bbolt store. With LINKD_MASTER_KEYS
// set, the current key is LINKD_MASTER_KEY_CURRENT or the list's last
// (add the new key there first); with the key file, RotateKey adds a new
// random key to it. linkd must be stopped: bbolt lets one process open the
// file. A running linkd does the same re-sealing in the background when it
// starts with a new current key, while it serves; with Postgres that is
// the only way (see the README: two deploys). It reports to out and
// returns an error when linkd is running, the keys do not parse, or a
// write fails.
func (m *Main) RotateKey(ctx context.Context, out io.Writer) error {
	c := m.Config
	if c.DatabaseURL != "" {
		return errors.New("with LINKD_DATABASE_URL, rotate by deploys: add the new key to LINKD_MASTER_KEYS and deploy, then name it in LINKD_MASTER_KEY_CURRENT and deploy again; the replicas re-seal in the background")
	}
	keys, err := m.keyring()
	if err != nil {
		return err
	}
	db, err := openBolt(c.DBPath, keys)
	if linkd.ErrorCode(err) == linkd.EUNAVAILABLE {
		return fmt.Errorf("%s is in use by a running linkd: stop it first, or restart it with the new key and it re-seals in the background", c.DBPath)
	} else if err != nil {
		return err
	}
	if c.MasterKeys == "" {
		path := filepath.Join(c.DataDir, "master.key")
		if keys, err = seal.AddKeyToFile(path); err != nil {
			db.Close()
			return err
		}
		fmt.Fprintf(out, "added master key %s to %s\n", keys.Current, path)
		// Reopen with the new ring; the old keys stay in it.
		if err := db.Close(); err != nil {
			return err
		}
		if db, err = openBolt(c.DBPath, keys); err != nil {
			return err
		}
	}
	total, err := linkd.ResealPass(ctx, db, rotateBatch)
	err = errors.Join(err, db.Close())
	fmt.Fprintf(out, "re-sealed %d access tokens under master key %s\n", total, keys.Current)
	return err
}

// openBolt opens the bbolt store sealing with keys.
func openBolt(path string, keys seal.Keyring) (*store.DB, error) {
	sealer, err := seal.New(keys)
	if err != nil {
		return nil, err
	}
	return store.Open(path, store.Options{Sealer: sealer})
}
