package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/linkd/linkd"
)

// DefaultMinFreeDisk is the free space below which linkd refuses new
// exchanges on the bbolt store: room for many Items and the file's growth.
const DefaultMinFreeDisk = 64 << 20

// freeDisk returns the bytes free to linkd on the file system of dir.
func freeDisk(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// admitExchange refuses an exchange, before Plaid is called, while the
// data disk has less than MinFreeDisk free: Plaid would bill an Item that
// linkd might then be unable to store. It checks only the bbolt store's
// disk: Postgres reports a full disk itself.
func (m *Main) admitExchange(ctx context.Context) error {
	if m.Config.DatabaseURL != "" || m.Config.MinFreeDisk <= 0 {
		return nil
	}
	free, err := freeDisk(m.Config.DataDir)
	if err != nil {
		return fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "cannot tell the data disk's free space; retry later"), err)
	}
	if free < uint64(m.Config.MinFreeDisk) {
		m.log.ErrorContext(ctx, "data disk nearly full: refusing exchanges", "free_bytes", free, "min_free_bytes", m.Config.MinFreeDisk)
		return linkd.Errorf(linkd.EUNAVAILABLE, "linkd's data disk is nearly full, so no public token is exchanged now (nothing was spent); retry later")
	}
	return nil
}

// parseSize reads a byte count: a number with an optional KiB, MiB or GiB
// suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB or GiB)", s)
	}
	return n * mult, nil
}
