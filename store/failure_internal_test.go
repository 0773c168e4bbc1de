package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/linkd/linkd"
)

// TestWrap_TransientStorageFailures: a full disk, a quota, an I/O error
// on write or a read-only file system is EUNAVAILABLE (the client retries
// once the operator frees space or remounts the disk), however bbolt
// reports it; other failures stay EINTERNAL.
func TestWrap_TransientStorageFailures(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"ENOSPCOnWrite", &os.PathError{Op: "write", Path: "linkd.db", Err: syscall.ENOSPC}, linkd.EUNAVAILABLE},
		{"ENOSPCOnFsync", fmt.Errorf("fdatasync: %w", syscall.ENOSPC), linkd.EUNAVAILABLE},
		{"ENOSPCOnResize", fmt.Errorf("file resize error: %s", syscall.ENOSPC), linkd.EUNAVAILABLE}, // bbolt's %s
		{"EDQUOT", &os.PathError{Op: "write", Path: "linkd.db", Err: syscall.EDQUOT}, linkd.EUNAVAILABLE},
		{"EIO", &os.PathError{Op: "write", Path: "linkd.db", Err: syscall.EIO}, linkd.EUNAVAILABLE},
		{"EROFS", &os.PathError{Op: "write", Path: "linkd.db", Err: syscall.EROFS}, linkd.EUNAVAILABLE},
		{"EROFSOnFsync", fmt.Errorf("fdatasync: %w", syscall.EROFS), linkd.EUNAVAILABLE},
		{"Other", errors.New("proto: cannot parse invalid wire-format data"), linkd.EINTERNAL},
		{"Corrupt", recovered("invalid page type"), linkd.EINTERNAL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := linkd.ErrorCode(wrap("op", tt.err)); got != tt.want {
				t.Errorf("code = %q, want %q", got, tt.want)
			}
		})
	}
}
