package store

import (
	"context"
	"io"

	"go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database file to w, from
// one read transaction (bbolt's Tx.WriteTo): writers go on meanwhile, and
// the copy opens as a database of its own. It returns EINTERNAL when the
// copy cannot be written (w's error wrapped), or ctx's error when ctx is
// done before the copy starts.
func (db *DB) Backup(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
	if err != nil {
		return internal("backup", err)
	}
	return nil
}

// CheckFile opens the database file at path read-only, runs bbolt's
// consistency check over it and closes it: what a restore must pass before
// the file replaces a live one. (Buckets a file lacks, from an earlier
// release, are added by Open's migration, so it does not ask for them.) It returns EINTERNAL for a file that does
// not open as a bbolt database or fails the check; it never writes.
func CheckFile(path string) error {
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: DefaultLockTimeout})
	if err != nil {
		return internal("open backup", err)
	}
	defer b.Close()
	return b.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return internal("check backup", errs[0])
		}
		return nil
	})
}
