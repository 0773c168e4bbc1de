package main

import (
	"bufio"
	"context"
	"debug/elf"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLinkd_StaticNonRoot builds linkd as the Dockerfile does (CGO_ENABLED=0,
// a static binary) and runs it as the deployments do: as nobody (setpriv,
// which execs linkd itself, unlike runuser, which stays as its parent and
// answers SIGTERM by killing it 2 s later), with the
// root filesystem read-only (a private mount namespace remounts / and
// /dev/shm read-only) and only its data directory writable. It must start,
// create its keys and database there, answer /healthz and /openapi.json,
// and stop cleanly on SIGTERM. No container engine runs here, so this is
// the nearest check of the image's runtime conditions.
func TestLinkd_StaticNonRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a static binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody and remount read-only")
	}
	if os.Getenv("LINKD_DEPLOY_TEST") != "1" {
		t.Skip("make deploytest runs this (LINKD_DEPLOY_TEST=1): the static build takes minutes on a busy machine")
	}
	for _, tool := range []string{"setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	base := t.TempDir()
	// nobody must reach the binary and the data directory through them.
	for _, dir := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(base, "linkd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	interp := f.Section(".interp")
	f.Close()
	if len(libs) > 0 || interp != nil {
		t.Fatalf("binary is not static: needs %v, interpreter section %v", libs, interp != nil)
	}

	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}

	// In a private mount namespace: the data directory becomes its own
	// (writable) mount, then / and /dev/shm go read-only; then nobody runs
	// linkd. Each step execs the next, so the process started here is
	// linkd itself and SIGTERM reaches it.
	script := `mount --bind "$DATA" "$DATA" && mount -o remount,bind,ro / &&
{ mount -o remount,bind,ro /dev/shm 2>/dev/null || true; } &&
exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups -- "$BIN" -data-dir "$DATA" -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "DATA="+data, "BIN="+bin, "RUN_UID="+nobody.Uid, "RUN_GID="+nobody.Gid, "LINKD_DUPLICATE_ITEMS=", "LINKD_API_KEYS=", "LINKD_MASTER_KEYS=")
	cmd.Dir = "/"
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	addr := make(chan string, 1)
	go func() {
		var all strings.Builder
		serving := regexp.MustCompile(`msg="linkd serving".* http=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		logs <- all.String()
	}()
	var httpAddr string
	select {
	case httpAddr = <-addr:
	case l := <-logs:
		cmd.Wait()
		t.Fatalf("linkd stopped before serving:\n%s", l)
	case <-ctx.Done():
		t.Fatal("linkd did not start in time")
	}

	for _, path := range []string{"/healthz", "/openapi.json"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d: %s", path, resp.StatusCode, body)
		}
		if path == "/healthz" && !strings.Contains(string(body), "SERVING") {
			t.Errorf("GET /healthz = %s", body)
		}
	}
	for _, name := range []string{"linkd.db", "api-key", "master.key"} {
		fi, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Errorf("data directory: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s is owned by uid %d, want nobody (%d)", name, st.Uid, uid)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	l := <-logs
	if err != nil {
		t.Errorf("linkd after SIGTERM: %v\n%s", err, l)
	}
	if strings.Contains(l, "level=ERROR") {
		t.Errorf("linkd logged errors:\n%s", l)
	}
}
