//go:build unix

package redirect_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the test process has used, user and system, GC
// workers included. On a shared machine it moves far less with other
// processes' load than wall time does.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
