package plaidemu

import "os"

// FailStateSyncs makes every later sync of e's state file fail with err,
// as a disk failing under the emulator would: a real fsync cannot be made
// to fail here. Rewrites of the whole file still sync for real.
func FailStateSyncs(e *Emulator, err error) {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	e.state.syncFile = func(*os.File) error { return err }
}

// SyncState runs the background syncer's work once, now, so that a test
// need not wait for it.
func SyncState(e *Emulator) { e.syncStateLog(e.state) }
