//go:build !unix

package plaidemu

import "os"

// unlinked reports whether f's file has no name left (deleted); a failed
// check counts as unlinked, so that the file is rewritten. Without fstat's
// link count this asks the path, as the syncer does.
func unlinked(f *os.File) bool {
	info, err := f.Stat()
	if err != nil {
		return true
	}
	now, err := os.Stat(f.Name())
	return err != nil || !os.SameFile(now, info)
}
