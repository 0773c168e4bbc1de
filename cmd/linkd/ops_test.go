package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/store"
)

// adminGet GETs path on the admin listener with an optional API key and
// returns the status and body.
func (ts *testServer) adminGet(tb testing.TB, path, key string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", "http://"+ts.AdminAddr()+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLinkd_Metrics: after a link flow over both transports, a REST 404
// and a refused webhook, /metrics has a series for each instrumented
// thing, and none of them carries a user id, an Item id or a token.
func TestLinkd_Metrics(t *testing.T) {
	ts := MustStartServer(t)
	ctx := context.Background()
	var secrets []string
	for _, c := range []linkdv1.LinkServiceClient{ts.GRPC(t), ts.REST()} {
		user := "metrics-user-" + randomToken(4)
		tok, publicToken := mustLink(t, c, user)
		resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-"+user), LinkToken: tok.GetLinkToken()})
		if err != nil {
			t.Fatalf("SubmitRedirect: %v", err)
		}
		// Again: the same public token is a repeat, not a second Item.
		if _, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-"+user), LinkToken: tok.GetLinkToken()}); err != nil {
			t.Fatalf("SubmitRedirect again: %v", err)
		}
		if _, err := c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: resp.GetItem().GetItemId()}); err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		secrets = append(secrets, user, tok.GetLinkToken(), publicToken, resp.GetItem().GetItemId(), "sess-"+user)
	}
	if code, _ := ts.Do(t, "GET", "/v1/nowhere", "", ""); code != http.StatusNotFound {
		t.Fatalf("GET /v1/nowhere = %d, want 404", code)
	}
	ts.Do(t, "POST", "/v1/webhooks/plaid", "", `{"webhook_type":"ITEM","webhook_code":"ERROR"}`)

	code, body := ts.adminGet(t, "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="SubmitRedirect",grpc_service="linkd.v1.LinkService",grpc_type="unary"}`,
		`grpc_server_handling_seconds_bucket{grpc_method="ParseRedirect"`, // initialized at zero
		`linkd_http_request_duration_seconds_count{code="200",method="POST",route="POST /v1/link/token/create"}`,
		`linkd_http_request_duration_seconds_count{code="404",method="GET",route="unmatched"}`,
		`linkd_http_request_duration_seconds_count{code="200",method="GET",route="GET /v1/items/{item_id}"}`,
		`linkd_http_request_duration_seconds_count{code="401",method="POST",route="POST /v1/webhooks/plaid"}`,
		`linkd_plaid_request_duration_seconds_count{endpoint="/item/public_token/exchange",error_code=""} 2`,
		`linkd_exchanges_total{outcome="created"} 2`,
		`linkd_exchanges_total{outcome="repeat"} 2`,
		`linkd_redirects_total{kind="connected"} 4`,
		`linkd_webhooks_total{type="unknown",verification="refused"} 1`,
		`linkd_store_operation_duration_seconds_count{operation="PutItem",result="ok"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, name := range []string{"linkd_bbolt_commit_batch_size_count", "linkd_bbolt_commit_duration_seconds_count"} {
		if m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
			t.Errorf("/metrics: %s = %v, want commits counted", name, m)
		}
	}
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("/metrics carries %q", s)
		}
	}
	if regexp.MustCompile(`(access|public|link)-sandbox-`).MatchString(body) {
		t.Error("/metrics carries a Plaid token")
	}
}

// TestLinkd_Metrics_Off: LINKD_METRICS=off serves no /metrics and still
// serves calls.
func TestLinkd_Metrics_Off(t *testing.T) {
	ts := MustStartServer(t, "LINKD_METRICS=off")
	if _, err := ts.GRPC(t).ParseRedirect(context.Background(), &linkdv1.ParseRedirectRequest{Url: docConnectedURL}); err != nil {
		t.Fatal(err)
	}
	if code, _ := ts.adminGet(t, "/metrics", ""); code != http.StatusNotFound {
		t.Errorf("GET /metrics = %d, want 404", code)
	}
}

// TestLinkd_Metrics_MadeUpMethods: an HTTP method is the client's word
// (net/http takes any token), so made-up methods are one OTHER series in
// the HTTP metric, not one series each, and a long one is cut short in
// the access log. Without credentials.
func TestLinkd_Metrics_MadeUpMethods(t *testing.T) {
	ts := MustStartServer(t)
	long := "M" + strings.Repeat("X", 4000)
	for _, m := range []string{"MADEUP1", "MADEUP2", "MADEUP3", long} {
		if code, _ := ts.Do(t, m, "/v1/items", "", ""); code < 400 {
			t.Errorf("%.10s /v1/items = %d, want refused", m, code)
		}
	}
	_, body := ts.adminGet(t, "/metrics", "")
	if strings.Contains(body, "MADEUP") || strings.Contains(body, "MXXX") {
		t.Errorf("/metrics has a series per made-up method:\n%q", linesWith(body, "linkd_http_request_duration_seconds_count"))
	}
	if want := `linkd_http_request_duration_seconds_count{code="404",method="OTHER",route="unmatched"} 4`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s:\n%q", want, linesWith(body, "linkd_http_request_duration_seconds_count"))
	}
	if strings.Contains(ts.Logs.String(), long[:100]) {
		t.Error("the access log holds a 4,000-byte method whole")
	}
}

// logLines returns the log lines that mention s.
func logLines(ts *testServer, s string) []string { return linesWith(ts.Logs.String(), s) }

// linesWith returns the lines of text that hold s.
func linesWith(text, s string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// TestLinkd_RequestID: a caller's x-request-id is kept and returned, over
// gRPC and REST; a call without one gets one; every log line of the call
// carries it, with Plaid's request_id once Plaid was called; each call
// has one access-log line, REST 404s included.
func TestLinkd_RequestID(t *testing.T) {
	ts := MustStartServer(t)
	ctx := context.Background()

	t.Run("GRPC", func(t *testing.T) {
		var header metadata.MD
		cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+ts.APIKey, "x-request-id", "req-grpc-1")
		if _, err := ts.GRPC(t).CreateLinkToken(cctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "rid-user"}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "req-grpc-1" {
			t.Errorf("x-request-id header = %v, want [req-grpc-1]", got)
		}
		lines := logLines(ts, "request_id=req-grpc-1")
		if len(lines) < 2 {
			t.Fatalf("log lines with the request id: %q", lines)
		}
		access := logLines(ts, "request_id=req-grpc-1 plaid_request_id=")
		if n := len(filterMsg(lines, "msg=rpc")); n != 1 {
			t.Errorf("%d access-log lines, want 1: %q", n, lines)
		}
		if len(access) == 0 {
			t.Errorf("no line carries Plaid's request_id: %q", lines)
		}
	})
	t.Run("GRPCGenerated", func(t *testing.T) {
		var header metadata.MD
		if _, err := ts.GRPC(t).ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: docConnectedURL}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-request-id"); len(got) != 1 || len(got[0]) < 16 {
			t.Errorf("x-request-id header = %v, want a generated id", got)
		}
	})
	t.Run("REST", func(t *testing.T) {
		req, _ := http.NewRequest("POST", ts.BaseURL+"/v1/link/token/create", strings.NewReader(`{"client_user_id":"rid-user"}`))
		req.Header.Set("Authorization", "Bearer "+ts.APIKey)
		req.Header.Set("X-Request-Id", "req-rest-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "req-rest-1" || resp.StatusCode != 200 {
			t.Errorf("status %d, X-Request-Id = %v, want [req-rest-1]", resp.StatusCode, got)
		}
		lines := logLines(ts, "request_id=req-rest-1")
		access := append(filterMsg(lines, "msg=http"), filterMsg(lines, "msg=rpc")...)
		if len(access) != 1 || !strings.Contains(access[0], "rpc=/linkd.v1.LinkService/CreateLinkToken") ||
			!strings.Contains(access[0], "plaid_request_id=") || !strings.Contains(access[0], `route="POST /v1/link/token/create"`) {
			t.Errorf("access-log lines = %q, want one naming the route, the RPC and Plaid's request_id", access)
		}
	})
	t.Run("REST404", func(t *testing.T) {
		resp := getWithRequestID(t, ts.BaseURL+"/v2/nothing/here", "req-404")
		if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") != "req-404" {
			t.Errorf("status %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
		}
		if lines := logLines(ts, "request_id=req-404"); len(lines) != 1 || !strings.Contains(lines[0], "status=404") || !strings.Contains(lines[0], "route=unmatched") {
			t.Errorf("404 log lines = %q", lines)
		}
	})
	t.Run("OneRequestIDPerLine", func(t *testing.T) {
		// The embedded emulator logs a Plaid error at info with Plaid's
		// request id, inside the linkd call that made the request: the
		// line names the call's request_id once, and Plaid's as
		// plaid_request_id, not as a second request_id.
		item := mustConnect(t, ts.GRPC(t), "rid-emu-user", "sess-rid-emu")
		cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+ts.APIKey, "x-request-id", "req-emu-1")
		_, err := ts.GRPC(t).FireSandboxWebhook(cctx, &linkdv1.FireSandboxWebhookRequest{ItemId: item.GetItemId(), WebhookCode: "SMS_MICRODEPOSITS_VERIFICATION"})
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("FireSandboxWebhook on an Item without auth: %v, want FAILED_PRECONDITION", err)
		}
		emu := logLines(ts, `msg="plaidemu: request"`)
		if len(logLines(ts, "request_id=req-emu-1")) == 0 || len(emu) == 0 {
			t.Fatalf("no emulator line of the call: %q", logLines(ts, "req-emu-1"))
		}
		for _, l := range strings.Split(ts.Logs.String(), "\n") {
			for _, key := range []string{" request_id=", " plaid_request_id="} {
				if n := strings.Count(l, key); n > 1 {
					t.Errorf("log line has %d%s keys: %s", n, key, l)
				}
			}
		}
		for _, l := range emu {
			if strings.Contains(l, "req-emu-1") && !strings.Contains(l, " plaid_request_id=") {
				t.Errorf("emulator line without Plaid's request id: %s", l)
			}
		}
	})
	t.Run("BadIDReplaced", func(t *testing.T) {
		resp := getWithRequestID(t, ts.BaseURL+"/healthz", "has spaces\tand=tabs")
		if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t=") {
			t.Errorf("X-Request-Id = %q, want a generated one", got)
		}
	})
}

// getWithRequestID GETs url with X-Request-Id id; the body is closed.
func getWithRequestID(t *testing.T, url, id string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Request-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func filterMsg(lines []string, msg string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, " "+msg+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestLinkd_Probes: /livez and /readyz on the admin listener; a data disk
// with less free space than -min-free-disk makes /readyz and gRPC health
// report not ready.
func TestLinkd_Probes(t *testing.T) {
	t.Run("Ready", func(t *testing.T) {
		ts := MustStartServer(t)
		for _, p := range []string{"/livez", "/readyz"} {
			if code, body := ts.adminGet(t, p, ""); code != 200 {
				t.Errorf("GET %s = %d %s", p, code, body)
			}
		}
		if code, _ := ts.adminGet(t, "/debug/pprof/", ""); code != 200 {
			t.Errorf("GET /debug/pprof/ = %d", code)
		}
	})
	t.Run("DiskFull", func(t *testing.T) {
		ts := MustStartServer(t, "LINKD_MIN_FREE_DISK=1000000TiB")
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body := ts.adminGet(t, "/readyz", "")
			if code == http.StatusServiceUnavailable && strings.Contains(body, "disk") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /readyz = %d %s, want 503 naming the disk", code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code, _ := ts.adminGet(t, "/livez", ""); code != 200 {
			t.Errorf("GET /livez = %d: a full disk is not a reason to restart", code)
		}
		resp, err := healthpb.NewHealthClient(ts.healthConn(t)).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health Check = %v, %v, want NOT_SERVING", resp, err)
		}
		// GET /healthz answers 503 now; a probe logs at debug whatever it
		// answers (the README's Logs), so the info-level log has no line
		// of it, as it has none of the gRPC Check above.
		if hresp := getWithRequestID(t, ts.BaseURL+"/healthz", "probe-not-serving"); hresp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET /healthz = %d, want 503", hresp.StatusCode)
		}
		if lines := logLines(ts, "request_id=probe-not-serving"); len(lines) != 0 {
			t.Errorf("GET /healthz answering 503 logged at info or above: %q", lines)
		}
	})
}

// healthConn returns a plain gRPC connection to linkd, closed at cleanup.
func (ts *testServer) healthConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestMain_Close_HealthWatch: an open health Watch stream hears
// NOT_SERVING and ends at shutdown instead of holding Close for its whole
// budget (it used to cost 10 s).
func TestMain_Close_HealthWatch(t *testing.T) {
	ts := MustStartServer(t)
	stream, err := healthpb.NewHealthClient(ts.healthConn(t)).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch status = %v, %v", first, err)
	}
	start := time.Now()
	if err := ts.Main.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close with an open Watch took %v", d)
	}
	if next, err := stream.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Watch after Close = %v, %v, want NOT_SERVING", next, err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("Watch stream still open after Close")
	}
}

// TestMain_Close_DrainDelay: during the drain delay linkd reports not
// ready yet still serves calls, then stops.
func TestMain_Close_DrainDelay(t *testing.T) {
	ts := MustStartServer(t)
	ts.Config.DrainDelay = 500 * time.Millisecond
	c := ts.GRPC(t)
	closed := make(chan error, 1)
	go func() { closed <- ts.Main.Close() }()
	time.Sleep(100 * time.Millisecond)
	if code, _ := ts.adminGet(t, "/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz while draining = %d, want 503", code)
	}
	if _, err := c.ParseRedirect(context.Background(), &linkdv1.ParseRedirectRequest{Url: docConnectedURL}); err != nil {
		t.Errorf("ParseRedirect while draining: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestLinkd_Backup: GET /backup on the admin listener needs the API key
// and streams a file that passes bbolt's check and opens as linkd's store
// with the Items it had.
func TestLinkd_Backup(t *testing.T) {
	ts := MustStartServer(t)
	item := mustConnect(t, ts.GRPC(t), "backup-user", "sess-backup")
	if code, _ := ts.adminGet(t, "/backup", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /backup without a key = %d, want 401", code)
	}
	if code, _ := ts.adminGet(t, "/backup", "not-the-key"); code != http.StatusUnauthorized {
		t.Errorf("GET /backup with a wrong key = %d, want 401", code)
	}
	code, body := ts.adminGet(t, "/backup", ts.APIKey)
	if code != 200 {
		t.Fatalf("GET /backup = %d", code)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "linkd.db")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(path); err != nil {
		t.Fatalf("CheckFile(backup): %v", err)
	}
	// The backup serves as a data directory of its own, with the same keys.
	key, _ := os.ReadFile(filepath.Join(ts.Config.DataDir, "master.key"))
	os.WriteFile(filepath.Join(dir, "master.key"), key, 0o600)
	restored := mustStartServerIn(t, dir, nil)
	got, err := restored.GRPC(t).GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
	if err != nil || got.GetItem().GetClientUserId() != "backup-user" {
		t.Errorf("GetItem from the restored backup = %v, %v", got, err)
	}
}

// TestLinkd_Backup_StalledClient: a backup client that stops reading
// holds no read transaction, so the database goes on reusing the pages
// its writes free. Streamed straight from a read transaction, the backup
// kept every page freed while the client stalled: the file grew by each
// rewrite (1 GB in 8 s of connected links).
func TestLinkd_Backup_StalledClient(t *testing.T) {
	ts := MustStartServer(t)
	ctx := context.Background()
	item := mustConnect(t, ts.GRPC(t), "backup-user", "sess-backup")
	stallBackup(t, ts)
	// The client reads no more. Rewrite a 1 MiB record 96 times.
	size := func() int64 {
		fi, err := os.Stat(ts.Config.DBPath)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	for i := range 96 {
		if _, err := ts.db.UpdateItem(ctx, item.GetItemId(), func(it *linkdv1.Item) (bool, error) {
			it.InstitutionName = strings.Repeat(string(rune('a'+i%26)), 1<<20)
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// bbolt grows the file 16 MiB at a time.
	if grew := size() - before; grew > 24<<20 {
		t.Errorf("the file grew %d MiB while a backup client stalled, for 1 MiB of live data rewritten: freed pages were not reused", grew>>20)
	}
}

// TestLinkd_Backup_OneAtATime: while one backup streams, another is 503
// with Retry-After: two copies at once could each pass the free-space
// check and together fill the disk.
func TestLinkd_Backup_OneAtATime(t *testing.T) {
	ts := MustStartServer(t)
	stallBackup(t, ts)
	req, _ := http.NewRequest("GET", "http://"+ts.AdminAddr()+"/backup", nil)
	req.Header.Set("Authorization", "Bearer "+ts.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second GET /backup while one streams = %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestLinkd_Backup_StalledClientGivenUp: a backup client that stops
// reading loses its backup after backupWriteTimeout, and with it the
// copy's disk space and the one-at-a-time turn; it used to keep both for
// as long as its connection lived.
func TestLinkd_Backup_StalledClientGivenUp(t *testing.T) {
	defer func(d time.Duration) { backupWriteTimeout = d }(backupWriteTimeout)
	backupWriteTimeout = 300 * time.Millisecond
	ts := MustStartServer(t)
	stallBackup(t, ts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := ts.adminGet(t, "/backup", ts.APIKey)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /backup = %d 10 s after a client stalled: the stalled backup was never given up", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stallBackup fills ts's store with more than the socket buffers hold
// and starts a GET /backup whose client reads the status line and no
// more, so that the backup stalls with it until the test ends.
func stallBackup(t *testing.T, ts *testServer) {
	t.Helper()
	for i := range 48 {
		lt := &storagev1.StoredLinkToken{LinkToken: fmt.Sprintf("link-sandbox-big-%d", i), ClientUserId: "backup-user", WebviewUrl: strings.Repeat("w", 1<<20)}
		if err := ts.db.PutLinkToken(context.Background(), lt); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", ts.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /backup HTTP/1.1\r\nHost: linkd\r\nAuthorization: Bearer %s\r\n\r\n", ts.APIKey)
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("GET /backup: %q, %v", line, err)
	}
}

// unwritableStore is a store whose every write fails, as a full or
// read-only disk or a lost database makes it.
type unwritableStore struct{ linkd.Store }

func (unwritableStore) TryLease(context.Context, string, string, time.Time, time.Duration) (bool, error) {
	return false, linkd.Errorf(linkd.EUNAVAILABLE, "disk I/O error")
}

// stuckStore is a store whose writes do not return until released, as a
// disk that stopped answering makes bbolt's (which heeds no context).
type stuckStore struct {
	linkd.Store
	release chan struct{}
}

func (s stuckStore) TryLease(context.Context, string, string, time.Time, time.Duration) (bool, error) {
	<-s.release
	return false, linkd.Errorf(linkd.EUNAVAILABLE, "released")
}

// TestMain_WatchStore_Stuck: a store write that does not return makes
// readiness and gRPC health NOT_SERVING after the probe's timeout; the
// probe loop used to wait on it, and kept reporting SERVING.
func TestMain_WatchStore_Stuck(t *testing.T) {
	stuck := stuckStore{release: make(chan struct{})}
	checkWatchStoreNotReady(t, stuck, 20*time.Second, "has not returned", func() { close(stuck.release) })
}

// slowStore's probe writes succeed, the nth after delay(n) (from 1).
type slowStore struct {
	linkd.Store
	calls *atomic.Int64
	delay func(n int64) time.Duration
}

func (s slowStore) TryLease(context.Context, string, string, time.Time, time.Duration) (bool, error) {
	time.Sleep(s.delay(s.calls.Add(1)))
	return true, nil
}

// runWatchStore runs watchStore over db until the test ends.
func runWatchStore(t *testing.T, db linkd.Store) *Main {
	m := &Main{Config: Config{DataDir: t.TempDir()}, db: db, Now: time.Now, log: slog.New(slog.DiscardHandler), health: health.NewServer()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.watchStore(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// awaitReady waits up to within for readiness to be ready (or not).
func awaitReady(t *testing.T, m *Main, ready bool, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); (m.ready.err() == nil) != ready; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("readiness = %v after %s, want ready %v", m.ready.err(), within, ready)
		}
	}
}

// TestMain_WatchStore_Slow: a store whose every write outlasts the probe's
// timeout stays not ready. The late success of one probe used to count at
// the next tick, so readiness went SERVING every other tick (a balancer
// saw the replica flap, and each change logged a line).
func TestMain_WatchStore_Slow(t *testing.T) {
	m := runWatchStore(t, slowStore{calls: new(atomic.Int64), delay: func(int64) time.Duration { return storeProbeEvery/2 + storeProbeEvery/10 }})
	awaitReady(t, m, false, storeProbeEvery)
	// Past the next tick and its probe's timeout.
	for end := time.Now().Add(storeProbeEvery * 6 / 5); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := m.ready.err(); err == nil {
			t.Fatal("ready while every store write outlasts the probe's timeout")
		}
	}
}

// TestMain_WatchStore_Recovers: after one write that outlasted the
// probe's timeout, a store that answers at once again is ready at the
// next tick, not later.
func TestMain_WatchStore_Recovers(t *testing.T) {
	m := runWatchStore(t, slowStore{calls: new(atomic.Int64), delay: func(n int64) time.Duration {
		if n == 1 {
			return storeProbeEvery/2 + storeProbeEvery/10
		}
		return 0
	}})
	awaitReady(t, m, false, storeProbeEvery)
	awaitReady(t, m, true, storeProbeEvery*3/4)
}

// TestMain_WatchStore_Unwritable: a store that refuses writes makes
// /readyz's reason and gRPC health NOT_SERVING at the first probe.
func TestMain_WatchStore_Unwritable(t *testing.T) {
	checkWatchStoreNotReady(t, unwritableStore{}, 5*time.Second, "store not writable", nil)
}

// checkWatchStoreNotReady runs watchStore over db until readiness fails
// (for at most within), and fails t unless the reason holds want and gRPC
// health is NOT_SERVING. unblock, when set, runs before the loop is
// stopped, to let db's writes return.
func checkWatchStoreNotReady(t *testing.T, db linkd.Store, within time.Duration, want string, unblock func()) {
	t.Helper()
	hs := health.NewServer()
	m := &Main{Config: Config{DataDir: t.TempDir()}, db: db, Now: time.Now, log: slog.New(slog.DiscardHandler), health: hs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.watchStore(ctx); close(done) }()
	defer func() {
		if unblock != nil {
			unblock()
		}
		cancel()
		<-done
	}()
	deadline := time.Now().Add(within)
	for m.ready.err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.ready.err(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("readiness = %v, want %q", err, want)
	}
	resp, err := hs.Check(ctx, &healthpb.HealthCheckRequest{Service: linkdv1.LinkService_ServiceDesc.ServiceName})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, %v, want NOT_SERVING", resp, err)
	}
}
