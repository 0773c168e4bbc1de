package pgtest

import "syscall"

// childAttr runs the server as the postgres user when we are root, and
// stops it (SIGQUIT, an immediate shutdown) when this process dies.
func childAttr(asPostgres bool, uid, gid int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if asPostgres {
		a.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return a
}
