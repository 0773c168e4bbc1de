package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"syscall"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/linkd/linkd"
)

// A corrupt page makes bbolt panic (an invalid page type, a freelist that
// is not one), in whatever goroutine touches it, and a page past the end of
// a truncated file faults. The wrappers here turn such a panic (and, with
// debug.SetPanicOnFault, such a fault) into an EINTERNAL error, so that one bad page fails the
// requests that read it and never the process, and name the error
// errCorrupt so that start-up can tell a damaged file from a busy one.

// errCorrupt marks a failure that came from a panic inside bbolt: the file
// is damaged.
var errCorrupt = errors.New("the database file is damaged")

// recovered turns a recovered panic value into an error wrapping errCorrupt.
func recovered(p any) error {
	return fmt.Errorf("%w: bbolt panicked reading it: %v", errCorrupt, p)
}

// IsCorrupt reports whether err came from a damaged database file: a page
// bbolt could not read, or a failed consistency check.
func IsCorrupt(err error) bool { return errors.Is(err, errCorrupt) }

// openBolt is bbolt.Open with a panic (a damaged freelist page is read at
// open) returned as an error, and bbolt's own verdicts on a damaged file
// (both meta pages invalid, a file shorter than its header) marked
// errCorrupt.
func openBolt(path string, opts *bbolt.Options) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, recovered(p)
		}
	}()
	db, err = bbolt.Open(path, 0o600, opts)
	if err == nil {
		if err = checkSize(db); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err != nil && (errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || strings.Contains(err.Error(), "file size too small")) {
		err = fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return db, err
}

// checkSize returns an errCorrupt error when the file is shorter than the
// pages its meta page counts (a truncated copy, a full disk during a
// restore): reading a page past the end of the mapped file is a SIGBUS,
// which no recover catches outside the goroutines that asked for it.
func checkSize(db *bbolt.DB) error {
	fi, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	var want int64
	if err := db.View(func(tx *bbolt.Tx) error { want = tx.Size(); return nil }); err != nil {
		return err
	}
	if fi.Size() < want {
		return fmt.Errorf("%w: the file is %d bytes, shorter than the %d its pages need (truncated)", errCorrupt, fi.Size(), want)
	}
	return nil
}

// viewSafely is bolt.View with a panic returned as an error.
func viewSafely(b *bbolt.DB, fn func(*bbolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p)
		}
	}()
	return b.View(fn)
}

// updateSafely is bolt.Update with a panic (in fn, or while bbolt commits:
// rebalancing and spilling read pages too) returned as an error. bbolt's
// own deferred rollback has released the write lock by then.
func updateSafely(b *bbolt.DB, fn func(*bbolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p)
		}
	}()
	return b.Update(fn)
}

// transient reports whether err is a storage failure that may pass without
// anyone touching the data: a full disk or quota (the operator frees
// space), an I/O error on write, or a file system mounted (or remounted,
// after errors) read-only. Callers get EUNAVAILABLE for these, so that
// clients retry instead of treating the request as broken.
func transient(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS} {
		// bbolt formats a failed resize with %s, which drops the chain.
		if errors.Is(err, errno) || strings.Contains(err.Error(), errno.Error()) {
			return true
		}
	}
	return false
}

// unavailable returns an EUNAVAILABLE error with a generic message that
// keeps cause in its chain for the logs.
func unavailable(op string, cause error) error {
	return fmt.Errorf("%w: store %s: %w", linkd.Errorf(linkd.EUNAVAILABLE, "storage temporarily unavailable"), op, cause)
}

// readAhead reads the file at path once, from start to end, so that a walk
// of its pages in tree order (Check) finds them cached: from a cold cache
// that makes the check about four times faster (BenchmarkDB_Check,
// RELIABILITY.md).
func readAhead(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Read(buf); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}
