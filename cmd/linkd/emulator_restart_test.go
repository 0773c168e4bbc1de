package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"google.golang.org/grpc/codes"
)

// TestLinkd_EmulatorItemsSurviveRestart: an Item linked through the
// embedded emulator still exists at the emulator after linkd restarts on
// the same data directory (with new emulator credentials, as every start
// makes), so removing it works and the same bank can be linked again by
// another user under -duplicate-items all.
func TestLinkd_EmulatorItemsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	link := func(c linkdv1.LinkServiceClient, user, session string) (*linkdv1.SubmitRedirectResponse, error) {
		tok, publicToken := mustLink(t, c, user)
		return c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, session), LinkToken: tok.GetLinkToken()})
	}

	ts := mustStartServerIn(t, dir, nil, "LINKD_DUPLICATE_ITEMS=all")
	old, err := link(ts.GRPC(t), "user-1", "sess-1")
	must(t, err)
	ts.conn.Close()
	ts.conn = nil
	must(t, ts.Close())
	if fi, err := os.Stat(filepath.Join(dir, emulatorStateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("emulator state file: %v, %v; want mode 0600", fi, err)
	}

	ts2 := mustStartServerIn(t, dir, nil, "LINKD_DUPLICATE_ITEMS=all")
	// REST, whose client does not wait for the background refresh of a
	// new Item: the refresh job's lease is still the first process's for
	// its 15 s TTL (Close does not release it).
	c := ts2.REST()
	id := old.GetItem().GetItemId()
	_, err = link(c, "user-2", "sess-2")
	if st := wantCode(t, err, codes.AlreadyExists); !strings.Contains(st.Message(), "already linked") {
		t.Errorf("relink before removal: %v", st.Message())
	}
	_, err = c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: id})
	must(t, err)
	_, err = c.RemoveItem(ctx, &linkdv1.RemoveItemRequest{ItemId: id})
	must(t, err)
	if n := ts2.emulator.Calls("/item/remove"); n != 1 {
		t.Errorf("emulator /item/remove calls = %d, want 1 (the Item removed at Plaid, not taken as gone)", n)
	}
	again, err := link(c, "user-2", "sess-2b")
	must(t, err)
	if again.GetItem().GetItemId() == "" || again.GetItem().GetItemId() == id {
		t.Errorf("relinked item_id = %q (old %q)", again.GetItem().GetItemId(), id)
	}
}

// TestLinkd_RefusesDamagedEmulatorState: a damaged emulator.json stops
// linkd at start with an error naming the file, rather than an emulator
// that has silently forgotten the Items the store holds.
func TestLinkd_RefusesDamagedEmulatorState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, emulatorStateFile)
	if err := os.WriteFile(path, []byte(`{"version": 1, "items": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, startErr(t, dir), "emulator", path, "damaged")
}

// TestEmulator_State: `linkd emulator -state` keeps the Items replicas
// linked across its own restart.
func TestEmulator_State(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emulator.json")
	start := func() *EmulatorMain {
		m := NewEmulatorMain()
		m.LogOutput = &syncBuffer{}
		if err := m.ParseFlags([]string{"-addr", "127.0.0.1:0", "-state", path}, func(string) string { return "" }); err != nil {
			t.Fatalf("ParseFlags: %v", err)
		}
		if err := m.Run(context.Background()); err != nil {
			t.Fatalf("Run: %v", err)
		}
		return m
	}
	ctx := context.Background()
	emu := start()
	ts := MustStartReplica(t, emu, DefaultEmulatorClientID, DefaultEmulatorSecret)
	c := ts.GRPC(t)
	pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
	must(t, err)
	item, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "user-1"})
	must(t, err)
	token, err := ts.db.AccessToken(ctx, item.GetItem().GetItemId())
	must(t, err)
	must(t, emu.Close())

	emu = start()
	defer emu.Close()
	body := `{"client_id":"` + DefaultEmulatorClientID + `","secret":"` + DefaultEmulatorSecret + `","access_token":"` + token.Reveal() + `"}`
	resp, err := http.Post(emu.URL()+"/item/get", "application/json", strings.NewReader(body))
	must(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), item.GetItem().GetItemId()) {
		t.Errorf("/item/get after the emulator restarted: HTTP %d %s", resp.StatusCode, raw)
	}
}
