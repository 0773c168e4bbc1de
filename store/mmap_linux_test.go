//go:build !race

// Not under the race detector: its runtime reserves far more address
// space than the limit this test sets.

package store_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	"github.com/linkd/linkd/store"
)

// TestOpen_AddressSpaceLimit: under an address-space limit (ulimit -v,
// systemd's LimitAS=) below the 8 GiB map, Open still opens the file and
// the store takes writes: it maps a quarter of the limit. With the 8 GiB
// map it failed with ENOMEM and linkd did not start. The limit is set in
// a child process, which cannot raise it again.
func TestOpen_AddressSpaceLimit(t *testing.T) {
	if dir := os.Getenv("LINKD_TEST_RLIMIT_AS_DIR"); dir != "" {
		lim := syscall.Rlimit{Cur: 4 << 30, Max: 4 << 30}
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, &lim); err != nil {
			t.Fatal(err)
		}
		if got := store.InitialMmapSize(); got != 1<<30 {
			t.Errorf("map at open under a 4 GiB limit = %d bytes, want a quarter of it", got)
		}
		db, err := store.Open(filepath.Join(dir, "linkd.db"), store.Options{Sealer: MustSealer(t, "k1:"+key1)})
		if err != nil {
			t.Fatalf("Open under a 4 GiB address-space limit: %v", err)
		}
		defer db.Close()
		if err := db.PutLinkToken(t.Context(), &storagev1.StoredLinkToken{LinkToken: "link-sandbox-rlimit", ClientUserId: "user-1"}); err != nil {
			t.Fatalf("PutLinkToken: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpen_AddressSpaceLimit$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LINKD_TEST_RLIMIT_AS_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
