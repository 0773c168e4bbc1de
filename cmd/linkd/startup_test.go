package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mustSeedDataDir starts linkd on a fresh data directory, links items
// Items (at least one) and stops it. It returns the directory and the id of the key in its
// master.key.
func mustSeedDataDir(t *testing.T, items int) (dir, kid string) {
	t.Helper()
	dir = t.TempDir()
	ts := mustStartServerIn(t, dir, nil)
	for i := range max(items, 1) {
		mustConnect(t, ts.GRPC(t), fmt.Sprintf("user-%d", i), fmt.Sprintf("sess-seed-%d", i))
	}
	ts.conn.Close()
	ts.conn = nil
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	kid, _, _ = strings.Cut(strings.TrimSpace(string(b)), ":")
	return dir, kid
}

// startErr runs linkd on dir with env, as MustStartServer does, and returns
// the error Run refused to start with (failing the test when it started).
func startErr(t *testing.T, dir string, env ...string) error {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	m := NewMain()
	m.LogOutput = &syncBuffer{}
	args := []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-data-dir", dir}
	if err := m.ParseFlags(args, func(k string) string { return vars[k] }); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	err := m.Run(context.Background())
	m.Close()
	if err == nil {
		t.Fatal("linkd started; want a refusal")
	}
	return err
}

// wantRefusal fails unless err mentions every one of words.
func wantRefusal(t *testing.T, err error, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
}

// TestLinkd_RefusesLostMasterKey starts linkd on Items sealed with a key it
// no longer has: it must refuse, naming the key id, rather than serve
// Items whose access tokens nothing can open.
func TestLinkd_RefusesLostMasterKey(t *testing.T) {
	other := "other:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))
	t.Run("ReplacedKeyFile", func(t *testing.T) {
		dir, kid := mustSeedDataDir(t, 1)
		if err := os.WriteFile(filepath.Join(dir, "master.key"), []byte(kid+":"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, startErr(t, dir), "key id(s) "+kid)
	})
	t.Run("DeletedKeyFile", func(t *testing.T) {
		dir, kid := mustSeedDataDir(t, 1)
		if err := os.Remove(filepath.Join(dir, "master.key")); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, startErr(t, dir), "key id(s) "+kid)
	})
	t.Run("OtherMasterKeysEnv", func(t *testing.T) {
		dir, kid := mustSeedDataDir(t, 1)
		wantRefusal(t, startErr(t, dir, "LINKD_MASTER_KEYS="+other), "key id(s) "+kid)
	})
}

// TestLinkd_RefusesDamagedDatabase damages a real database file in the
// ways disks and operators do: linkd must refuse to start with what to do,
// never panic, and never start empty over data that existed.
func TestLinkd_RefusesDamagedDatabase(t *testing.T) {
	pageSize := int64(os.Getpagesize())
	for _, tt := range []struct {
		name   string
		items  int // Items to link first: past a few, buckets get pages of their own
		damage func(t *testing.T, path string)
		words  []string
	}{
		{"Empty", 1, func(t *testing.T, path string) {
			must(t, os.Truncate(path, 0))
		}, []string{"empty (0 bytes)", "linkctl backup"}},
		{"Missing", 1, func(t *testing.T, path string) {
			must(t, os.Remove(path))
		}, []string{"is missing", "linkctl backup"}},
		{"TruncatedToHeader", 1, func(t *testing.T, path string) {
			must(t, os.Truncate(path, 100))
		}, []string{"damaged", "linkctl backup"}},
		{"TruncatedHalf", 1, func(t *testing.T, path string) {
			// Half the pages in use, not half the file: bbolt grows the
			// file ahead of its pages, so the file's second half may hold
			// none of them.
			must(t, os.Truncate(path, pagesInUse(t, path)/2*pageSize))
		}, []string{"linkctl backup"}},
		{"GarbledMetaPages", 1, func(t *testing.T, path string) {
			garble(t, path, 0, 2*pageSize)
		}, []string{"damaged", "linkctl backup"}},
		{"GarbledDataPages", 1, func(t *testing.T, path string) {
			// Every page past the meta pages: the freelist, the root and
			// every bucket's pages.
			fi, err := os.Stat(path)
			must(t, err)
			garble(t, path, 2*pageSize, fi.Size())
		}, []string{"damaged", "linkctl backup"}},
		{"GarbledTreePages", 1, func(t *testing.T, path string) {
			// The page type of every branch and leaf page, and nothing
			// else: the freelist loads, and bbolt asserts on the first
			// bucket page it reads.
			garbleTreePages(t, path)
		}, []string{"damaged", "linkctl backup"}},
		{"KeysOutOfOrder", 12, func(t *testing.T, path string) {
			// Every page stays well formed and only the order of keys
			// breaks: the file opens, and only the consistency check
			// finds the damage.
			breakKeyOrder(t, path)
		}, []string{"failed its consistency check", "needs to be >", "linkctl backup"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := mustSeedDataDir(t, tt.items)
			tt.damage(t, filepath.Join(dir, "linkd.db"))
			err := startErr(t, dir)
			t.Log(err)
			wantRefusal(t, err, tt.words...)
		})
	}
}

// garble overwrites bytes [from, to) of the file at path with a pattern.
func garble(t *testing.T, path string, from, to int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt(bytes.Repeat([]byte{0xa5}, int(to-from)), from)
	must(t, err)
}

// pagesInUse returns the high-water mark of the bbolt file at path: the
// page count of its newer meta page (page header 16 bytes, then magic,
// version, page size, flags uint32, root bucket 16 bytes, freelist, pgid,
// txid uint64).
func pagesInUse(t *testing.T, path string) int64 {
	t.Helper()
	pageSize := int64(os.Getpagesize())
	b, err := os.ReadFile(path)
	must(t, err)
	if int64(len(b)) < 2*pageSize {
		t.Fatalf("%s is %d bytes, shorter than its two meta pages", path, len(b))
	}
	le := binary.LittleEndian
	meta := b[16:]
	if other := b[pageSize+16:]; le.Uint64(other[48:]) > le.Uint64(meta[48:]) {
		meta = other
	}
	return int64(le.Uint64(meta[40:]))
}

// garbleTreePages overwrites the page type of every branch and leaf page
// of the bbolt file at path (page header: id uint64, flags uint16, ...),
// leaving the meta and freelist pages intact. It returns how many pages it
// changed, failing the test when none.
func garbleTreePages(t testing.TB, path string) int {
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
	return n
}

// breakKeyOrder zeroes the first key byte of the last value (not bucket)
// element of every leaf page holding two or more elements, so that its keys
// are out of order (leaf element: flags, pos, ksize, vsize uint32, pos
// counted from the element).
func breakKeyOrder(t testing.TB, path string) {
	t.Helper()
	pageSize := int64(os.Getpagesize())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	n := 0
	for off := 2 * pageSize; off+pageSize <= int64(len(b)); off += pageSize {
		p := b[off:]
		if le.Uint16(p[8:]) != 0x02 {
			continue
		}
		count := int64(le.Uint16(p[10:]))
		if count < 2 {
			continue
		}
		elem := 16 + (count-1)*16
		if le.Uint32(p[elem:])&0x01 != 0 || le.Uint32(p[elem+8:]) == 0 {
			continue // a bucket, or an empty key
		}
		k := elem + int64(le.Uint32(p[elem+4:]))
		if k >= pageSize || p[k] == 0 {
			continue
		}
		p[k] = 0
		n++
	}
	if n == 0 {
		t.Fatal("no leaf page to reorder")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
