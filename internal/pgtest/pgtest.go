// Package pgtest runs a throwaway PostgreSQL cluster for tests: one per test
// binary, started on first use and stopped by Main, with a fresh database
// for every test that asks, so tests never see each other's rows.
//
// The cluster runs without fsync, except in a benchmark run (-bench), where
// it keeps PostgreSQL's durable defaults.
//
// The cluster listens on a free loopback port; PGTEST_PORTS=low-high
// (42900-42999) keeps it within that range, for a machine whose users
// share out port ranges.
//
// It needs Debian's postgresql binaries (initdb, postgres, pg_isready,
// psql). Where they are missing a test skips, saying so, unless the
// environment has CI=true: then it fails, so that CI cannot pass by testing
// nothing.
package pgtest

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Main runs m's tests and then stops the cluster, if a test started one. A
// test binary that uses MustStart calls it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if c := started; c != nil {
		if err := c.stop(code != 0); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// MustStart returns the DSN of a new, empty database in the test binary's
// cluster, starting the cluster on first use. It skips tb when the
// PostgreSQL binaries are missing (fails it under CI=true) and fails it
// when the cluster does not start or the database cannot be created; the
// cluster's log is shown then, and whenever tb fails.
func MustStart(tb testing.TB) string {
	tb.Helper()
	c := cluster(tb)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), seq.Add(1))
	if out, err := c.psql("postgres", "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v\n%s\n%s", err, out, c.logTail())
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pgtest: cluster log %s:\n%s", c.logPath, c.logTail())
		}
	})
	return c.dsn(name)
}

// BinDir returns the directory of the PostgreSQL binaries, or "" when none
// is installed.
func BinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); exists(filepath.Join(dir, "postgres")) {
			return dir
		}
	}
	// Debian keeps them off PATH, one directory per major version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest last in glob order
		if exists(filepath.Join(dirs[i], "initdb")) && exists(filepath.Join(dirs[i], "postgres")) {
			return dirs[i]
		}
	}
	return ""
}

var (
	once    sync.Once
	started *pgCluster
	failed  error
	seq     atomic.Int64
)

func cluster(tb testing.TB) *pgCluster {
	tb.Helper()
	once.Do(func() { started, failed = start() })
	if missing, ok := failed.(missingError); ok {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("pgtest: %v (CI=true: Postgres is required)", missing)
		}
		tb.Skipf("pgtest: %v; install Debian's postgresql to run this test", missing)
	}
	if failed != nil {
		tb.Fatalf("pgtest: %v", failed)
	}
	return started
}

// missingError reports that PostgreSQL is not installed.
type missingError struct{}

func (missingError) Error() string { return "PostgreSQL binaries (initdb, postgres) not found" }

// pgCluster is a running cluster in a temporary directory.
type pgCluster struct {
	bin, base, data, logPath string
	port                     int
	asPostgres               bool // run the binaries as the postgres user (we are root)
	uid, gid                 int
	server                   *exec.Cmd
	exited                   chan error
}

func start() (*pgCluster, error) {
	bin := BinDir()
	if bin == "" {
		return nil, missingError{}
	}
	base, err := os.MkdirTemp("", "linkd-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, base: base, data: filepath.Join(base, "data"), logPath: filepath.Join(base, "postgres.log")}
	// initdb refuses to run as root: hand the directory to postgres.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run the cluster: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			return nil, err
		}
		c.asPostgres, c.uid, c.gid = true, uid, gid
	}
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A free port can be taken between our probe and the server's bind:
	// try a few.
	for range 3 {
		if c.port, err = freePort(); err != nil {
			break
		}
		if err = c.startServer(); err == nil {
			return c, nil
		}
	}
	os.RemoveAll(base)
	return nil, err
}

// startServer runs postgres as a child of this process, from a goroutine
// locked to its OS thread for good, so that the parent-death signal
// (Linux) stops the cluster even when the test binary dies without
// running Main's cleanup (a panic, a -timeout), instead of leaving it
// running on a shared machine. It returns once the server accepts
// connections.
func (c *pgCluster) startServer() error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := []string{"-D", c.data,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(c.port), "-k", c.base,
		"-c", "max_connections=200"}
	if !benchmarking() {
		// Tests cannot tell a synced commit from an unsynced one, and the
		// fsyncs of a database per test cost the shared machine's disk
		// more than the tests themselves; benchmarks keep Debian's
		// defaults so their figures are a real server's.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Dir = c.base
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr(c.asPostgres, c.uid, c.gid)
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the server
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v\n%s", err, c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := c.run("pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port)); err == nil {
			c.server, c.exited = cmd, exited
			return nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return fmt.Errorf("postgres not ready after 60 s\n%s", c.logTail())
		}
	}
}

// stop stops the cluster and removes its files, keeping the log (and
// saying where) when keepLog is set.
func (c *pgCluster) stop(keepLog bool) error {
	// SIGQUIT is postgres's immediate shutdown: the data is thrown away.
	var err error
	if err = c.server.Process.Signal(syscall.SIGQUIT); err == nil {
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.server.Process.Kill()
			err = fmt.Errorf("postgres did not stop within 30 s; killed")
		}
	}
	os.RemoveAll(c.data)
	if keepLog {
		fmt.Fprintf(os.Stderr, "pgtest: cluster log kept at %s\n", c.logPath)
	} else {
		os.RemoveAll(c.base)
	}
	return err
}

func (c *pgCluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *pgCluster) psql(db, sql string) ([]byte, error) {
	return c.run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "-d", db, "-c", sql)
}

func (c *pgCluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.base
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s timed out", name)
	}
}

// logTail returns the last lines of the cluster's log.
func (c *pgCluster) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// benchmarking reports whether the test binary runs benchmarks (-test.bench).
func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// freePort returns a loopback port free now: any (the kernel's choice),
// or one in PGTEST_PORTS when that is set.
func freePort() (int, error) {
	low, high, ok := strings.Cut(os.Getenv("PGTEST_PORTS"), "-")
	if !ok {
		return bindable(0)
	}
	lo, err1 := strconv.Atoi(low)
	hi, err2 := strconv.Atoi(high)
	if err1 != nil || err2 != nil || lo <= 0 || hi < lo || hi > 65535 {
		return 0, fmt.Errorf("PGTEST_PORTS=%q: want low-high, e.g. 42900-42999", os.Getenv("PGTEST_PORTS"))
	}
	for range 4 * (hi - lo + 1) {
		if port, err := bindable(lo + rand.IntN(hi-lo+1)); err == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in PGTEST_PORTS=%s", os.Getenv("PGTEST_PORTS"))
}

// bindable returns port (the kernel's choice for 0) when a listener can
// bind it on loopback.
func bindable(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
