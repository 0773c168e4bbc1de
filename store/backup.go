package store

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"

	"github.com/linkd/linkd"
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

// Restore replaces the database file at path with the backup at from,
// offline: the backup must pass CheckFile, and a file at path must not be
// held by a running linkd (its lock is taken for the swap). The copy is
// written beside path, synced, then renamed over it, so a crash leaves
// either file whole. It returns EINVALID for a backup that fails the
// check, EUNAVAILABLE when path is in use, and EINTERNAL otherwise.
func Restore(from, path string) error {
	if err := CheckFile(from); err != nil {
		return linkd.Errorf(linkd.EINVALID, "backup %s does not pass the check: %v", from, err)
	}
	if _, err := os.Stat(path); err == nil {
		old, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: DefaultLockTimeout})
		if err != nil {
			return linkd.Errorf(linkd.EUNAVAILABLE, "%s is in use (stop linkd first) or unreadable: %v", path, err)
		}
		defer old.Close()
	}
	src, err := os.Open(from)
	if err != nil {
		return internal("restore", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".restore-*")
	if err != nil {
		return internal("restore", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return internal("restore", err)
	}
	return nil
}
