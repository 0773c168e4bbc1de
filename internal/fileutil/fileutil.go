// Package fileutil installs small files that must survive a crash whole:
// key files, the emulator's state. A crash leaves the old file or the new
// one, never a mix.
package fileutil

import (
	"os"
	"path/filepath"
)

// Install writes data to a 0600 temporary file beside path, syncs it,
// puts it at path with place (os.Rename to replace, os.Link to create and
// fail when path exists), and syncs the directory. The temporary file is
// gone afterwards either way. It returns the first error.
func Install(path string, data []byte, place func(oldname, newname string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := place(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir syncs a directory, so that a file just placed in it survives a
// crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
