//go:build !linux

package pgtest

import "syscall"

// childAttr has no parent-death signal outside Linux: a test binary that
// dies without Main's cleanup leaves its cluster running there.
func childAttr(asPostgres bool, uid, gid int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if asPostgres {
		a.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return a
}
