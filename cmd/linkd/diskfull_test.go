package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// mustTmpfs mounts a tmpfs of size bytes on a temporary directory, for
// tests of a full disk. Where mounting is impossible (not root) the test
// skips, saying so, except under CI=true, where it fails.
func mustTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs for the disk-full test: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full, or until
// it leaves only keep bytes free, and returns its path.
func fillDisk(t *testing.T, dir string, keep uint64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		free, err := freeDisk(dir)
		if err != nil {
			t.Fatal(err)
		}
		if free <= keep {
			return path
		}
		n := min(uint64(len(buf)), free-keep)
		if _, err := f.Write(buf[:n]); errors.Is(err, syscall.ENOSPC) {
			return path
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// TestLinkd_DiskFull runs exchanges against a data directory on a small
// tmpfs. Below the free-space threshold an exchange is refused before
// Plaid is called; with the disk full after Plaid exchanged, the access
// token is kept and stored once room returns, and retries of the same
// public tokens complete from what linkd kept: one Plaid exchange per
// token, an Item for every one.
func TestLinkd_DiskFull(t *testing.T) {
	disk := mustTmpfs(t, 8<<20)
	ctx := context.Background()

	t.Run("RefusedBeforePlaid", func(t *testing.T) {
		ts := mustStartServerIn(t, filepath.Join(disk, "refuse"), nil, "LINKD_MIN_FREE_DISK=4MiB")
		c := ts.GRPC(t)
		pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
		if err != nil {
			t.Fatal(err)
		}
		filler := fillDisk(t, disk, 2<<20)
		defer os.Remove(filler)
		before := ts.emulator.Calls(exchangePath)
		_, err = c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "user-1"})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("exchange with the disk nearly full: %v, want Unavailable", err)
		}
		if n := ts.emulator.Calls(exchangePath) - before; n != 0 {
			t.Fatalf("Plaid exchanges while refused = %d, want 0 (nothing spent)", n)
		}
		os.Remove(filler)
		if _, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "user-1"}); err != nil {
			t.Fatalf("exchange once room returned: %v", err)
		}
	})

	t.Run("FullAfterPlaid", func(t *testing.T) {
		ts := mustStartServerIn(t, filepath.Join(disk, "full"), nil, "LINKD_MIN_FREE_DISK=0")
		c := ts.GRPC(t)
		const n = 24
		tokens := make([]string, n)
		for i := range tokens {
			pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
			if err != nil {
				t.Fatal(err)
			}
			tokens[i] = pt.GetPublicToken()
		}
		filler := fillDisk(t, disk, 0)
		var wg sync.WaitGroup
		codesSeen := make([]codes.Code, n)
		for i, tok := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := c.ExchangePublicToken(cctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: tok, ClientUserId: "user-1"})
				codesSeen[i] = status.Code(err)
			}()
		}
		wg.Wait()
		exchangedWhileFull := ts.emulator.Calls(exchangePath)
		counts := map[codes.Code]int{}
		for _, code := range codesSeen {
			counts[code]++
		}
		t.Logf("with the disk full: answers %v; Plaid exchanged %d of %d tokens", counts, exchangedWhileFull, n)
		for code := range counts {
			if code != codes.OK && code != codes.Unavailable {
				t.Errorf("answer %v with the disk full, want OK or Unavailable (retryable)", code)
			}
		}

		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		for _, tok := range tokens {
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: tok, ClientUserId: "user-1"})
				if err == nil {
					if _, err := ts.db.AccessToken(ctx, resp.GetItem().GetItemId()); err != nil {
						t.Errorf("item %s has no readable access token: %v", resp.GetItem().GetItemId(), err)
					}
					break
				}
				if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
					t.Fatalf("retry once room returned: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if got := ts.emulator.Calls(exchangePath); got != n {
			t.Errorf("Plaid exchanges = %d for %d public tokens, want exactly one each", got, n)
		}
		items, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-1"})
		if err != nil || len(items.GetItems()) != n {
			t.Errorf("ListItems = %d, %v; want %d Items", len(items.GetItems()), err, n)
		}
	})
}
