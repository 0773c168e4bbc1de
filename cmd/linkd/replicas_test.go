package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/pgtest"
	"github.com/linkd/linkd/plaidemu"
)

// replicaKey and replicaMasterKeys configure every replica alike: with a
// shared store they must not generate their own.
const (
	replicaKey        = "replica-test-key"
	replicaMasterKeys = "r1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

// replica is one linkd process of TestLinkd_Replicas.
type replica struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	c    linkdv1.LinkServiceClient
	logs *syncBuffer
}

// buildLinkd builds the linkd binary once per test into a temp dir.
func buildLinkd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "linkd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startReplica starts bin as a replica on dsn, talking to the emulator at
// plaidURL, with env added to its environment, and waits for it to serve.
func startReplica(t *testing.T, bin, dsn, plaidURL string, env ...string) *replica {
	t.Helper()
	cmd := exec.Command(bin, "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", t.TempDir(),
		"-log-format", "json", "-plaid-base-url", plaidURL)
	cmd.Env = append(os.Environ(), "LINKD_DATABASE_URL="+dsn, "LINKD_API_KEYS="+replicaKey,
		"LINKD_MASTER_KEYS="+replicaMasterKeys, "PLAID_CLIENT_ID=replica-client", "PLAID_SECRET=replica-secret", "PLAID_ENV=sandbox")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{cmd: cmd, logs: &syncBuffer{}}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, r.logs))
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				GRPC string `json:"grpc"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "linkd serving" {
				ready <- line.GRPC
			}
		}
	}()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		if r.conn != nil {
			r.conn.Close()
		}
		if t.Failed() {
			t.Logf("replica logs:\n%s", r.logs.String())
		}
	})
	select {
	case addr := <-ready:
		if r.conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+replicaKey), method, req, reply, cc, opts...)
			})); err != nil {
			t.Fatal(err)
		}
		r.c = linkdv1.NewLinkServiceClient(r.conn)
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("replica did not start within 60s; logs:\n%s", r.logs.String())
		return nil
	}
}

// TestLinkd_Replicas runs two linkd processes on one Postgres and one
// emulator. The same connected redirect sent to both at once is exchanged
// once and both callers get the same Item; then one replica is killed
// under load and every Item it acknowledged is read through the other.
func TestLinkd_Replicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and Postgres; run without -short")
	}
	dsn := pgtest.MustStart(t)
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "replica-client", Secret: "replica-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	bin := buildLinkd(t)
	a := startReplica(t, bin, dsn, emu.URL())
	b := startReplica(t, bin, dsn, emu.URL())
	ctx := context.Background()

	const rounds = 50
	for round := range rounds {
		user := fmt.Sprintf("replica-user-%d", round)
		tok, publicToken := mustLink(t, a.c, user)
		u := connectedURL(publicToken, uuid.NewString())
		var wg sync.WaitGroup
		items := make([]string, 2)
		errs := make([]error, 2)
		for i, r := range []*replica{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := r.c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken()})
				errs[i] = err
				items[i] = resp.GetItem().GetItemId()
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: SubmitRedirect errors: a=%v b=%v", round, errs[0], errs[1])
		}
		if items[0] == "" || items[0] != items[1] {
			t.Fatalf("round %d: replicas returned items %q and %q, want one and the same", round, items[0], items[1])
		}
		list, err := b.c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: user})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.GetItems()) != 1 {
			t.Fatalf("round %d: %d Items listed, want 1", round, len(list.GetItems()))
		}
	}
	if n := emu.Calls("/item/public_token/exchange"); n != rounds {
		t.Fatalf("Plaid saw %d exchanges for %d public tokens, want exactly one each", n, rounds)
	}

	// SIGKILL one replica under load: what it acknowledged is in the store.
	wctx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				pt, err := a.c.CreateSandboxPublicToken(wctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
				if err != nil {
					continue
				}
				resp, err := a.c.ExchangePublicToken(wctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: fmt.Sprintf("kill-user-%d", w)})
				if err != nil {
					continue
				}
				mu.Lock()
				acked = append(acked, resp.GetItem().GetItemId())
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	stop()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no exchange was acknowledged before the kill: the test exercised nothing")
	}
	for _, id := range acked {
		if _, err := b.c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: id}); err != nil {
			t.Errorf("item %s acknowledged by the killed replica is not readable through the other: %v", id, err)
		}
	}
	t.Logf("%d rounds exchanged once each; %d Items acknowledged before SIGKILL, all readable on the other replica", rounds, len(acked))
}
