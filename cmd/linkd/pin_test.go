package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

var (
	pinRun  = flag.Bool("pin.run", false, "run TestLinkd_PinnedByNonReader: RSS of a real linkd under gRPC streams that never read")
	pinHold = flag.Duration("pin.hold", 0, "TestLinkd_PinnedByNonReader: also keep the 1×250 load this long and report the heap (the server's keepalive should close it)")
)

// pinScenario is one load: conns connections, each with streams
// GetLinkSession calls whose answers are never read.
type pinScenario struct{ conns, streams int }

// TestLinkd_PinnedByNonReader measures what a client that never reads can
// pin in linkd: it makes the largest Link session linkd records, then, for
// each scenario on a fresh linkd process over the same data, opens raw
// HTTP/2 connections with a 0-byte stream flow-control window, sends
// GetLinkSession on many streams and never reads, and logs VmRSS before and
// after. Skipped unless -pin.run; it logs figures, it asserts none.
//
//	go test -run TestLinkd_PinnedByNonReader -v ./cmd/linkd/ -args -pin.run -pin.hold=100s
func TestLinkd_PinnedByNonReader(t *testing.T) {
	if !*pinRun {
		t.Skip("measurement; run with -args -pin.run")
	}
	bin := filepath.Join(t.TempDir(), "linkd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()

	p := startPinProcess(t, bin, dataDir)
	sessionID, size := fillSession(t, p)
	p.stop()
	t.Logf("session %s: %d events page, %d bytes encoded GetLinkSessionResponse", sessionID, size.events, size.bytes)

	for _, sc := range []pinScenario{{1, 100}, {1, 250}, {10, 100}, {1, 1500}} {
		p := startPinProcess(t, bin, dataDir)
		// One ordinary read first, so the session's pages are in RSS
		// before the baseline.
		if _, err := p.client().GetLinkSession(p.ctx(), &linkdv1.GetLinkSessionRequest{LinkSessionId: sessionID}); err != nil {
			t.Fatalf("GetLinkSession: %v", err)
		}
		time.Sleep(time.Second)
		before := p.rss(t)
		var conns []net.Conn
		var opened int
		for range sc.conns {
			c, n := openNonReader(t, p.grpcAddr, sessionID, sc.streams)
			conns = append(conns, c)
			opened += n
		}
		after, peak := settleRSS(t, p, 10*time.Second)
		heap := p.heapTop(t)
		t.Logf("%d conn × %d streams (%d HEADERS sent): VmRSS %d MiB before, %d MiB after (peak %d MiB), +%d MiB, %.1f KiB per stream; heap inuse:\n%s",
			sc.conns, sc.streams, opened, before>>10, after>>10, peak>>10, (after-before)>>10,
			float64(after-before)/float64(opened), heap)
		// Does linkd still answer while pinned?
		ctx, cancel := context.WithTimeout(p.ctx(), 5*time.Second)
		_, err := p.client().GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: sessionID, PageSize: 1})
		cancel()
		t.Logf("  an ordinary GetLinkSession meanwhile: %v; GetLinkSession handlers started: %s", err, p.startedCalls(t))
		if *pinHold > 0 && sc == (pinScenario{1, 250}) {
			for end := time.Now().Add(*pinHold); time.Now().Before(end); time.Sleep(15 * time.Second) {
				t.Logf("  held: VmRSS %d MiB, %s", p.rss(t)>>10, heapTotal(p.heapTop(t)))
			}
		}
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(3 * time.Second)
		t.Logf("  VmRSS %d MiB 3s after the connections closed, %s", p.rss(t)>>10, heapTotal(p.heapTop(t)))
		p.stop()
	}
}

type pinProcess struct {
	cmd       *exec.Cmd
	grpcAddr  string
	adminAddr string
	conn      *grpc.ClientConn
}

const pinKey = "pin-key"

func startPinProcess(t *testing.T, bin, dataDir string) *pinProcess {
	t.Helper()
	cmd := exec.Command(bin, "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", dataDir, "-log-format", "json")
	cmd.Env = append(os.Environ(), "LINKD_API_KEYS="+pinKey, "LINKD_MASTER_KEYS="+crashMasterKeys,
		"PLAID_CLIENT_ID=", "PLAID_SECRET=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type addrs struct{ GRPC, Admin string }
	ready := make(chan addrs, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg   string `json:"msg"`
				GRPC  string `json:"grpc"`
				Admin string `json:"admin"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "linkd serving" {
				ready <- addrs{line.GRPC, line.Admin}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-ready:
		conn, err := grpc.NewClient(a.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		p := &pinProcess{cmd: cmd, grpcAddr: a.GRPC, adminAddr: a.Admin, conn: conn}
		t.Cleanup(p.stop)
		return p
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("linkd did not start within 30s")
		return nil
	}
}

func (p *pinProcess) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.conn.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func (p *pinProcess) ctx() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+pinKey)
}

func (p *pinProcess) client() linkdv1.LinkServiceClient { return linkdv1.NewLinkServiceClient(p.conn) }

// rss returns the process's VmRSS in KiB.
func (p *pinProcess) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// settleRSS samples VmRSS every 500ms for d and returns the last and the
// highest sample.
func settleRSS(t *testing.T, p *pinProcess, d time.Duration) (last, peak int64) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		last = p.rss(t)
		peak = max(peak, last)
	}
	return last, peak
}

// heapTop returns the first lines of `go tool pprof -top` of the running
// process's in-use heap.
func (p *pinProcess) heapTop(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.adminAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return "heap profile: " + err.Error()
	}
	defer resp.Body.Close()
	f := filepath.Join(t.TempDir(), "heap.pb.gz")
	b, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=12", f).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("pprof: %v\n%s", err, out)
	}
	return string(out)
}

type sessionSize struct{ events, bytes int }

// fillSession records events with long institution_search_query values in
// one session until linkd refuses one, and returns the session and the
// size of its first (default-sized) page.
func fillSession(t *testing.T, p *pinProcess) (string, sessionSize) {
	t.Helper()
	ctx := p.ctx()
	c := p.client()
	tok, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "pin-user"})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	const session = "pin-session"
	query := strings.Repeat("q", 15<<10) // the URL is capped at 16 KiB
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var recorded int
	for i := 0; ; i++ {
		u := strings.Replace(eventURL("SEARCH_INSTITUTION", "SELECT_INSTITUTION", session, t0.Add(time.Duration(i)*time.Second)),
			"&institution_search_query", "&institution_search_query="+query+strconv.Itoa(i), 1)
		_, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken().GetLinkToken()})
		if err != nil {
			code := status.Code(err)
			if code != codes.FailedPrecondition && code != codes.ResourceExhausted {
				t.Fatalf("SubmitRedirect %d: %v", i, err)
			}
			t.Logf("event %d refused: %v", i, err)
			break
		}
		recorded++
		if i > 10000 {
			t.Fatal("no refusal after 10000 events")
		}
	}
	resp, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: session})
	if err != nil {
		t.Fatalf("GetLinkSession: %v", err)
	}
	t.Logf("%d events recorded", recorded)
	return session, sessionSize{len(resp.GetSession().GetEvents()), proto.Size(resp)}
}

// openNonReader opens a raw HTTP/2 connection to addr whose stream
// flow-control window is 0 bytes, sends n GetLinkSession calls on it and
// never reads. It returns the connection and how many streams it sent.
func openNonReader(t *testing.T, addr, sessionID string, n int) (net.Conn, int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, nil)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	body, err := proto.Marshal(&linkdv1.GetLinkSessionRequest{LinkSessionId: sessionID})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(msg[1:5], uint32(len(body)))
	copy(msg[5:], body)

	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	sent := 0
	for i := range n {
		hb.Reset()
		for _, f := range [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", linkdv1.LinkService_GetLinkSession_FullMethodName},
			{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
			{"authorization", "Bearer " + pinKey},
		} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := uint32(2*i + 1)
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Logf("HEADERS %d: %v", i, err)
			break
		}
		if err := fr.WriteData(id, true, msg); err != nil {
			t.Logf("DATA %d: %v", i, err)
			break
		}
		sent++
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, sent
}

// heapTotal returns the "Showing nodes accounting for" line of a pprof -top.
func heapTotal(top string) string {
	for _, l := range strings.Split(top, "\n") {
		if strings.Contains(l, "accounting for") {
			return "heap inuse: " + strings.TrimSpace(l)
		}
	}
	return top
}

// startedCalls returns the GetLinkSession count of grpc_server_started_total
// from the admin listener's /metrics.
func (p *pinProcess) startedCalls(t *testing.T) string {
	resp, err := http.Get("http://" + p.adminAddr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "grpc_server_started_total{") && strings.Contains(l, `grpc_method="GetLinkSession"`) {
			return l[strings.LastIndex(l, " ")+1:]
		}
	}
	return "?"
}
