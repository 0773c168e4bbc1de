//go:build unix

package plaidemu

import (
	"os"
	"syscall"
)

// unlinked reports whether f's file has no name left, deleted or replaced
// by a rename onto its path, so that records appended to it would be lost
// at the next start. It asks the open file (fstat), a fraction of the cost
// of looking the path up on every change; a file moved elsewhere keeps its
// link, which the syncer's path check catches instead. A failed check
// counts as unlinked: the file is rewritten.
func unlinked(f *os.File) bool {
	var st syscall.Stat_t
	return syscall.Fstat(int(f.Fd()), &st) != nil || st.Nlink == 0
}
