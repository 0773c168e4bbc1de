package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/pgtest"
)

// startMain runs a Main with vars as its environment and returns it; the
// caller closes it.
func startMain(t *testing.T, dataDir string, vars map[string]string) *Main {
	t.Helper()
	m := NewMain()
	m.LogOutput = &syncBuffer{}
	args := []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", dataDir}
	if err := m.ParseFlags(args, func(k string) string { return vars[k] }); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("Run: %v\n%s", err, m.LogOutput)
	}
	return m
}

// TestLinkd_Migrate links Items on the embedded bbolt store, copies the
// file into Postgres with linkd migrate (twice: it is safe to re-run),
// and starts linkd on Postgres: the Items, their sessions and their
// sealed access tokens are all there.
func TestLinkd_Migrate(t *testing.T) {
	dsn := pgtest.MustStart(t)
	dataDir := t.TempDir()
	keys := map[string]string{"LINKD_API_KEYS": "migrate-key", "LINKD_MASTER_KEYS": replicaMasterKeys}
	bolt := startMain(t, dataDir, keys)
	ts := &testServer{Main: bolt, APIKey: "migrate-key"}
	c := ts.GRPC(t)
	var items []*linkdv1.Item
	for _, s := range []string{"sess-m1", "sess-m2"} {
		items = append(items, mustConnect(t, c, "user-"+s, s))
	}
	tokens := map[string]string{}
	for _, it := range items {
		tok, err := bolt.db.AccessToken(context.Background(), it.GetItemId())
		if err != nil {
			t.Fatal(err)
		}
		tokens[it.GetItemId()] = tok.Reveal()
	}
	ts.conn.Close()
	if err := bolt.Close(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"LINKD_DATABASE_URL": dsn}
	for k, v := range keys {
		env[k] = v
	}
	for run := range 2 {
		m := NewMain()
		if err := m.ParseFlags([]string{"-data-dir", dataDir}, func(k string) string { return env[k] }); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := m.Migrate(context.Background(), &out); err != nil {
			t.Fatalf("migrate run %d: %v\n%s", run, err, out.String())
		}
		if !strings.Contains(out.String(), "items 2/2") {
			t.Errorf("migrate run %d said %q, want items 2/2", run, out.String())
		}
	}

	pg := startMain(t, t.TempDir(), env)
	defer pg.Close()
	ps := &testServer{Main: pg, APIKey: "migrate-key"}
	pc := ps.GRPC(t)
	defer ps.conn.Close()
	ctx := context.Background()
	for _, it := range items {
		got, err := pc.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: it.GetItemId()})
		if err != nil || got.GetItem().GetClientUserId() != it.GetClientUserId() {
			t.Fatalf("GetItem(%s) on Postgres = %v, %v", it.GetItemId(), got, err)
		}
		sess, err := pc.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: it.GetLinkSessionId()})
		if err != nil || sess.GetSession().GetItemId() != it.GetItemId() {
			t.Fatalf("GetLinkSession(%s) on Postgres = %v, %v", it.GetLinkSessionId(), sess, err)
		}
	}
	// The sealed tokens came across and open to what bbolt held.
	for id, want := range tokens {
		tok, err := pg.db.AccessToken(ctx, id)
		if err != nil || tok.Reveal() != want {
			t.Fatalf("access token of %s on Postgres does not open to the one bbolt held: %v", id, err)
		}
	}
}
