package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

func TestLinkd_RotateKey(t *testing.T) {
	dir := t.TempDir()
	ts := mustStartServerIn(t, dir, nil)
	c := ts.GRPC(t)
	tok, publicToken := mustLink(t, c, "user-1")
	resp, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-rotate"), LinkToken: tok.GetLinkToken()})
	if err != nil {
		t.Fatal(err)
	}
	itemID := resp.GetItem().GetItemId()
	before, err := ts.db.AccessToken(context.Background(), itemID)
	if err != nil {
		t.Fatal(err)
	}

	rotator := NewMain()
	if err := rotator.ParseFlags([]string{"-data-dir", dir}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = rotator.RotateKey(context.Background(), &out)
	if err == nil || !strings.Contains(err.Error(), "running linkd") {
		t.Errorf("RotateKey while linkd runs = %v, want a 'running linkd' error", err)
	}
	keyFile, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if strings.Count(string(keyFile), ":") != 1 {
		t.Errorf("the refused rotation changed the key file")
	}

	ts.conn.Close()
	ts.conn = nil
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := rotator.RotateKey(context.Background(), &out); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if !strings.Contains(out.String(), "re-sealed 1 access tokens") {
		t.Errorf("RotateKey said %q", out.String())
	}

	ts2 := mustStartServerIn(t, dir, nil)
	after, err := ts2.db.AccessToken(context.Background(), itemID)
	if err != nil || after.Reveal() != before.Reveal() {
		t.Fatalf("access token after rotation: %v (same: %v)", err, after.Reveal() == before.Reveal())
	}
	if _, err := ts2.GRPC(t).GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: itemID}); err != nil {
		t.Errorf("GetItem after rotation: %v", err)
	}
}
