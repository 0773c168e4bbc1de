package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/postgres"
	"github.com/linkd/linkd/seal"
)

// migrateBatch is how many records one Postgres transaction of a
// migration writes.
const migrateBatch = 500

// Migrate copies the bbolt file at -db into the Postgres store of
// LINKD_DATABASE_URL, for `linkd migrate`: records are copied as they are
// (access tokens stay sealed, public tokens stay hashed), a record already
// in Postgres is kept, so the copy is safe to re-run, and the counts of
// both are compared at the end. linkd must not be running on the bbolt
// file (its lock says so). It returns an error when the counts in Postgres
// fall short of the file's.
func (m *Main) Migrate(ctx context.Context, out io.Writer) error {
	c := m.Config
	if c.DatabaseURL == "" {
		return errors.New("set LINKD_DATABASE_URL to the Postgres database to copy into")
	}
	keys, err := m.keyring()
	if err != nil {
		return err
	}
	src, err := openBolt(c.DBPath, keys)
	if linkd.ErrorCode(err) == linkd.EUNAVAILABLE {
		return fmt.Errorf("%s is in use by a running linkd: stop it first", c.DBPath)
	} else if err != nil {
		return err
	}
	defer src.Close()
	sealer, err := seal.New(keys)
	if err != nil {
		return err
	}
	dst, err := postgres.Open(ctx, c.DatabaseURL, postgres.Options{Sealer: sealer})
	if err != nil {
		return fmt.Errorf("open the Postgres store: %w", err)
	}
	defer dst.Close()

	var want linkd.RecordCounts
	var batch []linkd.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := dst.Import(ctx, batch)
		batch = batch[:0]
		return err
	}
	err = src.Export(ctx, func(r linkd.Record) error {
		switch {
		case r.LinkToken != nil:
			want.LinkTokens++
		case r.Session != nil:
			want.Sessions++
		case r.Item != nil:
			want.Items++
		case r.Webhook != nil:
			want.Webhooks++
		}
		batch = append(batch, r)
		if len(batch) >= migrateBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("copy records: %w", err)
	}
	got, err := dst.CountRecords(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "copied %s into Postgres: link tokens %d/%d, sessions %d/%d, items %d/%d, webhooks %d/%d (in Postgres / in the file)\n",
		c.DBPath, got.LinkTokens, want.LinkTokens, got.Sessions, want.Sessions, got.Items, want.Items, got.Webhooks, want.Webhooks)
	if got.LinkTokens < want.LinkTokens || got.Sessions < want.Sessions || got.Items < want.Items || got.Webhooks < want.Webhooks {
		return errors.New("Postgres holds fewer records than the file: the copy is incomplete; run linkd migrate again")
	}
	return nil
}
