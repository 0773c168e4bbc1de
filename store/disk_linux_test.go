package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkDisk_WriteSync is the disk's own floor under a commit: a write
// of size bytes at a moving offset of a 64 MiB file, then fdatasync, as a
// bbolt commit ends (bbolt syncs twice: its pages, then its meta page). A
// connected link writes ~36 KiB of pages; a commit under c=64 load carries
// ~20 links. Compare ns/op with linkd_bbolt_commit_duration_seconds.
func BenchmarkDisk_WriteSync(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
			if err != nil {
				b.Fatal(err)
			}
			// Allocated first, so that a sync writes data, not the file's growth.
			if err := f.Truncate(64 << 20); err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, size)
			var off int64
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
				off = (off + int64(size)) % (64 << 20)
			}
		})
	}
}
