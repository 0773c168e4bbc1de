package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// testServer is a linkd started by MustStartServer: the real Main on
// loopback ports, a temporary data directory, the embedded emulator.
type testServer struct {
	*Main
	APIKey  string
	BaseURL string
	// Logs holds everything linkd logged.
	Logs *syncBuffer
	conn *grpc.ClientConn
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustStartServer starts linkd with the given extra environment on free
// loopback ports and a fresh data directory, and stops it at cleanup.
func MustStartServer(tb testing.TB, env ...string) *testServer {
	tb.Helper()
	return mustStartServerIn(tb, tb.TempDir(), nil, env...)
}

// MustStartServerAt is MustStartServer with now as linkd's clock (and its
// emulator's).
func MustStartServerAt(tb testing.TB, now func() time.Time, env ...string) *testServer {
	tb.Helper()
	return mustStartServerIn(tb, tb.TempDir(), now, env...)
}

func mustStartServerIn(tb testing.TB, dataDir string, now func() time.Time, env ...string) *testServer {
	tb.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	m := NewMain()
	logs := &syncBuffer{}
	m.LogOutput = logs
	m.Now = now
	args := []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", dataDir}
	if err := m.ParseFlags(args, func(k string) string { return vars[k] }); err != nil {
		tb.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		tb.Fatalf("Run: %v\nlogs:\n%s", err, logs.String())
	}
	ts := &testServer{Main: m, BaseURL: "http://" + m.HTTPAddr(), Logs: logs}
	tb.Cleanup(func() {
		if ts.conn != nil {
			ts.conn.Close()
		}
		if err := m.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	if key := vars["LINKD_API_KEYS"]; key != "" {
		ts.APIKey = strings.Split(key, ",")[0]
	} else {
		b, err := os.ReadFile(filepath.Join(dataDir, "api-key"))
		if err != nil {
			tb.Fatalf("read generated API key: %v", err)
		}
		ts.APIKey = strings.TrimSpace(string(b))
	}
	return ts
}

// GRPC returns a gRPC client that sends the API key.
func (ts *testServer) GRPC(tb testing.TB) linkdv1.LinkServiceClient {
	tb.Helper()
	if ts.conn == nil {
		conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				if _, ok := metadata.FromOutgoingContext(ctx); !ok {
					ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+ts.APIKey)
				}
				err := invoker(ctx, method, req, reply, cc, opts...)
				if _, bench := tb.(*testing.B); err == nil && !bench && method == linkdv1.LinkService_SubmitRedirect_FullMethodName {
					ts.WaitRefreshed(tb)
				}
				return err
			}))
		if err != nil {
			tb.Fatalf("grpc.NewClient: %v", err)
		}
		ts.conn = conn
	}
	return linkdv1.NewLinkServiceClient(ts.conn)
}

// WaitRefreshed waits until no queued Item refresh is due, so that a test
// sees an Item after the background refresh a connected redirect queues
// (which may record an Item error, such as a login the test resets next).
func (ts *testServer) WaitRefreshed(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		due, err := ts.db.DueItemRefreshes(context.Background(), time.Now().Add(time.Hour), 1)
		if err != nil {
			tb.Fatalf("DueItemRefreshes: %v", err)
		}
		if len(due) == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("queued Item refreshes still pending after 10s")
}

// REST returns a client that speaks linkd's REST API with the API key.
func (ts *testServer) REST() linkdv1.LinkServiceClient {
	return &restClient{base: ts.BaseURL, key: ts.APIKey}
}

// Do sends a raw HTTP request with the given authorization (none when
// empty) and returns the status and body.
func (ts *testServer) Do(tb testing.TB, method, path, auth, body string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(method, ts.BaseURL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
