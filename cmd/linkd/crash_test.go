package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/seal"
)

var (
	crashCycles = flag.Int("crash.cycles", 50, "SIGKILL/restart cycles of TestLinkd_CrashRecovery")
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestLinkd_CrashRecovery's kill times; 0 picks one (and logs it)")
)

// crashMasterKeys is a fixed test key, so the test can open the file itself.
const crashMasterKeys = "crash1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// TestLinkd_CrashRecovery runs linkd as a real process, drives concurrent
// exchanges, kills it with SIGKILL at a random moment, and checks that
// every Item it acknowledged is present and unseals and that the bbolt
// file is consistent, for -crash.cycles cycles. SIGKILL keeps the kernel's
// page cache, so this cannot catch a missing fsync: store's TestOpen/NoSyncFalse
// and TestDB_PutItem_CommittedBeforeReturn cover that.
func TestLinkd_CrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash cycles are slow; run without -short")
	}
	bin := filepath.Join(t.TempDir(), "linkd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	keys, err := seal.ParseMasterKeys(crashMasterKeys, "")
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	if *crashSeed != 0 {
		seed = *crashSeed
	}
	t.Logf("crash seed %d (rerun with -args -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	acked := map[string]bool{}
	var kills, totalAcked int
	for cycle := range *crashCycles {
		p := startProcess(t, bin, dataDir)
		newAcks := p.driveUntilKilled(t, time.Duration(20+rng.IntN(280))*time.Millisecond)
		kills++
		for _, id := range newAcks {
			acked[id] = true
		}
		totalAcked += len(newAcks)

		db, err := openBolt(filepath.Join(dataDir, "linkd.db"), keys)
		if err != nil {
			t.Fatalf("cycle %d: reopen after SIGKILL: %v", cycle, err)
		}
		if err := db.Check(context.Background()); err != nil {
			t.Fatalf("cycle %d: bbolt check: %v", cycle, err)
		}
		for id := range acked {
			if _, err := db.GetItem(context.Background(), id); err != nil {
				t.Fatalf("cycle %d: acknowledged item %s lost: %v", cycle, id, err)
			}
			if _, err := db.AccessToken(context.Background(), id); err != nil {
				t.Fatalf("cycle %d: acknowledged item %s has no readable access token: %v", cycle, id, err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if totalAcked == 0 {
		t.Fatal("no exchange was acknowledged in any cycle: the test exercised nothing")
	}
	t.Logf("%d SIGKILL cycles, %d acknowledged Items, all present and readable", kills, len(acked))
}

// crashProcess is one linkd process started by startProcess.
type crashProcess struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
}

// startProcess starts bin on free ports and waits for its "linkd serving" line.
func startProcess(t *testing.T, bin, dataDir string) *crashProcess {
	t.Helper()
	cmd := exec.Command(bin, "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", dataDir, "-log-format", "json")
	cmd.Env = append(os.Environ(), "LINKD_API_KEYS=crash-key", "LINKD_MASTER_KEYS="+crashMasterKeys,
		"PLAID_CLIENT_ID=", "PLAID_SECRET=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				GRPC string `json:"grpc"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "linkd serving" {
				ready <- line.GRPC
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case addr := <-ready:
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		return &crashProcess{cmd: cmd, conn: conn}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("linkd did not start within 30s")
		return nil
	}
}

// driveUntilKilled runs concurrent sandbox exchanges, SIGKILLs the process
// after d, and returns the item_ids whose exchange was acknowledged.
func (p *crashProcess) driveUntilKilled(t *testing.T, d time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer crash-key"))
	c := linkdv1.NewLinkServiceClient(p.conn)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
				if err != nil {
					continue
				}
				resp, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: fmt.Sprintf("user-%d", w)})
				if err != nil {
					continue
				}
				mu.Lock()
				acked = append(acked, resp.GetItem().GetItemId())
				mu.Unlock()
			}
		}()
	}
	time.Sleep(d)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	cancel()
	wg.Wait()
	p.conn.Close()
	return acked
}
