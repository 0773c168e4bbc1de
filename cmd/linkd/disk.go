package main

import (
	"context"
	"fmt"
	"syscall"

	"github.com/linkd/linkd"
)

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
	if err := checkFreeDisk(m.Config.DataDir, m.Config.MinFreeDisk); err != nil {
		m.log.ErrorContext(ctx, "refusing an exchange", "err", err)
		return fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "linkd's data disk is nearly full, so no public token is exchanged now (nothing was spent); retry later"), err)
	}
	return nil
}
