//go:build unix

package store

import "syscall"

// initialMmapSize is maxInitialMmap, or a quarter of the process's
// address-space limit (ulimit -v, systemd's LimitAS=) when that is less:
// an 8 GiB map under a 4 GiB limit failed with ENOMEM, and linkd did not
// start at all.
func initialMmapSize() int {
	size := uint64(maxInitialMmap)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &lim); err == nil && uint64(lim.Cur)/4 < size {
		size = uint64(lim.Cur) / 4 // RLIM_INFINITY is past any limit
	}
	return int(size)
}
