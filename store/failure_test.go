package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/store"
)

// TestDB_DamagedPages garbles the branch and leaf pages of an open file
// under the store (the mapping shows them at once), as a disk or a stray
// write would: every request that reads them must fail with EINTERNAL,
// never panic the process, and Check must call the file damaged.
func TestDB_DamagedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "linkd.db")
	db, err := store.Open(path, store.Options{Sealer: MustSealer(t, "k1:"+key1), Now: newClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := db.TryLease(ctx, name, "owner", clockStart, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	garbleTreePages(t, path)

	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"View", func() error { _, _, err := db.ListWebhooks(ctx, "", 10); return err }},
		{"Update", func() error { _, err := db.TryLease(ctx, "d", "owner", clockStart, time.Minute); return err }},
		{"Check", func() error { return db.Check(ctx) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if code := linkd.ErrorCode(err); code != linkd.EINTERNAL {
				t.Errorf("error %v (code %q), want EINTERNAL", err, code)
			}
			if !store.IsCorrupt(err) {
				t.Errorf("IsCorrupt(%v) = false", err)
			}
		})
	}
}

// garbleTreePages overwrites the page type of every branch and leaf page
// of the bbolt file at path (page header: id uint64, flags uint16, ...).
func garbleTreePages(t testing.TB, path string) {
	t.Helper()
	pageSize := int64(os.Getpagesize())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for off := 2 * pageSize; off+pageSize <= int64(len(b)); off += pageSize {
		if flags := b[off+8]; b[off+9] == 0 && (flags == 0x01 || flags == 0x02) {
			if _, err := f.WriteAt([]byte{0xee, 0xee}, off+8); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no branch or leaf pages to garble")
	}
}
