package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/linkd/linkd"
)

// adminHandler serves the admin listener: /metrics, /debug/pprof/, /livez,
// /readyz, and /backup, which alone needs an API key (it is the whole
// database, sealed tokens included).
func (m *Main) adminHandler(apiKeys []string) http.Handler {
	mux := http.NewServeMux()
	if m.metrics != nil {
		mux.Handle("GET /metrics", m.metrics.Handler())
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.ready.err(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /backup", requireAPIKey(apiKeys, http.HandlerFunc(m.serveBackup)))
	return mux
}

// requireAPIKey answers 401 unless the request carries "Authorization:
// Bearer <one of keys>", compared in constant time.
func requireAPIKey(keys []string, next http.Handler) http.Handler {
	var hashes [][sha256.Size]byte
	for _, k := range keys {
		hashes = append(hashes, sha256.Sum256([]byte(k)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(cred))
		match := 0
		for _, h := range hashes {
			match |= subtle.ConstantTimeCompare(got[:], h[:])
		}
		if !strings.EqualFold(scheme, "Bearer") || cred == "" || match != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "authorization: Bearer <API key> is required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// backupWriteTimeout bounds each write of a backup to its client: one
// that stops reading releases the copy (and its disk space) after this
// long instead of holding it for as long as its connection lives.
var backupWriteTimeout = time.Minute

// errNoRoom is backupCopy's refusal for want of disk space.
var errNoRoom = errors.New("no room for the backup's copy")

// serveBackup streams a consistent copy of the bbolt file. The copy is
// taken into an unlinked file beside the database first and streamed
// from there: bbolt reuses no page freed while a read transaction is
// open, so a copy streamed straight to a slow or stalled client held its
// transaction as long as the client took, and every commit meanwhile
// grew the file (about 1 GB in 8 s of connected links). One backup runs
// at a time (503 with Retry-After otherwise: two copies at once could
// each pass the free-space check and together fill the disk), and each
// write to the client must finish within backupWriteTimeout. A copy
// that fails halfway aborts the connection, so the client sees a broken
// body rather than a short file that looks whole.
func (m *Main) serveBackup(w http.ResponseWriter, r *http.Request) {
	if m.bolt == nil {
		http.Error(w, "backup copies the bbolt store; back up Postgres with its own tools (pg_dump)", http.StatusNotImplemented)
		return
	}
	if !m.backupMu.TryLock() {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "another backup is running; retry when it ends", http.StatusServiceUnavailable)
		return
	}
	defer m.backupMu.Unlock()
	start := time.Now()
	copyFile, err := m.backupCopy(r)
	if err != nil {
		m.log.ErrorContext(r.Context(), "backup failed", "err", err)
		if errors.Is(err, errNoRoom) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
			linkd.ErrorCode(err) == linkd.EUNAVAILABLE { // the store's word for a full disk
			http.Error(w, "backup failed: "+err.Error(), http.StatusServiceUnavailable)
		} else {
			http.Error(w, "backup failed", http.StatusInternalServerError)
		}
		return
	}
	defer copyFile.Close()
	size, _ := copyFile.Seek(0, io.SeekCurrent)
	if _, err := copyFile.Seek(0, io.SeekStart); err != nil {
		m.log.ErrorContext(r.Context(), "backup failed", "err", err)
		http.Error(w, "backup failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="linkd-%s.db"`, start.UTC().Format("20060102T150405Z")))
	cw := &countingWriter{w: w, rc: http.NewResponseController(w)}
	if _, err := io.Copy(cw, copyFile); err != nil {
		m.log.ErrorContext(r.Context(), "backup failed", "err", err, "bytes", cw.n)
		panic(http.ErrAbortHandler)
	}
	m.log.InfoContext(r.Context(), "backup streamed", "bytes", cw.n, "duration", time.Since(start))
}

// backupCopy writes a copy of the database into a new file beside it,
// unlinked at once (so that neither an error nor a crash leaves it
// behind), and returns it open at its end. It refuses (errNoRoom) when
// the disk lacks room for the copy above -min-free-disk: exchanges need
// that room.
func (m *Main) backupCopy(r *http.Request) (*os.File, error) {
	dir := filepath.Dir(m.Config.DBPath)
	fi, err := os.Stat(m.Config.DBPath)
	if err != nil {
		return nil, err
	}
	// The file's size is its blocks' (bbolt grows it sparsely): the
	// copy holds at most that.
	need := fi.Size()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		need = min(need, st.Blocks*512)
	}
	free, err := freeDisk(dir)
	if err != nil {
		return nil, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if int64(free) < m.Config.MinFreeDisk+need {
		return nil, fmt.Errorf("%w: %d MiB free in %s, the copy needs %d MiB above -min-free-disk %d MiB",
			errNoRoom, free>>20, dir, need>>20, m.Config.MinFreeDisk>>20)
	}
	f, err := os.CreateTemp(dir, ".backup-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	if err := m.bolt.Backup(r.Context(), f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// countingWriter counts what passes through it, each write bounded by
// backupWriteTimeout.
type countingWriter struct {
	w  io.Writer
	rc *http.ResponseController
	n  int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout)); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
