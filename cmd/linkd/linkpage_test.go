package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/linkpage"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/service"
)

func TestLinkd_LinkPageURL(t *testing.T) {
	t.Run("EmulatorDefault", func(t *testing.T) {
		ts := MustStartServer(t)
		tok, err := ts.REST().CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{ClientUserId: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		if want := "http://" + ts.HTTPAddr() + linkpage.Path + "?isWebview=true&token="; !strings.HasPrefix(tok.GetLinkToken().GetWebviewUrl(), want) {
			t.Errorf("webview_url = %q, want %s...", tok.GetLinkToken().GetWebviewUrl(), want)
		}
		if status, body := ts.Do(t, "GET", linkpage.Path+"?isWebview=true&token="+tok.GetLinkToken().GetLinkToken(), "", ""); status != 200 || !strings.Contains(body, `id="link-config"`) {
			t.Errorf("GET link.html without a key = %d %.200s, want the page", status, body)
		}
	})
	t.Run("ExplicitLinkURLWins", func(t *testing.T) {
		ts := MustStartServer(t, "LINKD_LINK_URL="+service.DefaultLinkURL)
		tok, err := ts.REST().CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{ClientUserId: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok.GetLinkToken().GetWebviewUrl(), service.DefaultLinkURL+"?") {
			t.Errorf("webview_url = %q, want the configured %s", tok.GetLinkToken().GetWebviewUrl(), service.DefaultLinkURL)
		}
	})
}

func TestBrowsableAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "127.0.0.1:8080",
		"[::1]:8080":     "[::1]:8080",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := browsableAddr(tcp); got != want {
			t.Errorf("browsableAddr(%s) = %s, want %s", addr, got, want)
		}
	}
}

func TestEmulatorBackend_Errors(t *testing.T) {
	ts := MustStartServer(t)
	b := emulatorBackend{ts.emulator}
	_, err := b.LinkToken("link-sandbox-00000000-0000-0000-0000-000000000000")
	var perr *linkpage.Error
	if !errors.As(err, &perr) || perr.Code != "INVALID_LINK_TOKEN" || perr.Type != "INVALID_INPUT" {
		t.Errorf("LinkToken(unknown) = %v, want a linkpage.Error INVALID_INPUT/INVALID_LINK_TOKEN", err)
	}
	if _, err := b.CreatePublicToken("link-sandbox-00000000-0000-0000-0000-000000000000", "ins_109508", nil); !errors.As(err, &perr) || perr.Code != "INVALID_LINK_TOKEN" {
		t.Errorf("CreatePublicToken(unknown) = %v", err)
	}
	if ins := b.Institutions(); len(ins) != 4 || len(ins[0].Accounts) == 0 || !ins[3].OAuth {
		t.Errorf("Institutions = %+v", ins)
	}
}

// TestEmulatorBackend_AccountSelection: an update-mode token with
// update.account_selection_enabled reaches the page as such, offering the
// account the bank added after NEW_ACCOUNTS_AVAILABLE beside the Item's.
func TestEmulatorBackend_AccountSelection(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "page-client", Secret: "page-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	hooks := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hooks.Close()
	post := func(path string, body map[string]any) map[string]any {
		t.Helper()
		body["client_id"], body["secret"] = "page-client", "page-secret"
		raw, _ := json.Marshal(body)
		resp, err := http.Post(emu.URL()+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	pt := post("/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"},
		"options": map[string]any{"webhook": hooks.URL}})
	accessToken := post("/item/public_token/exchange", map[string]any{"public_token": pt["public_token"]})["access_token"]
	post("/sandbox/item/fire_webhook", map[string]any{"access_token": accessToken, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"})
	tok := post("/link/token/create", map[string]any{"client_name": "App", "language": "en", "country_codes": []string{"US"},
		"user": map[string]any{"client_user_id": "u1"}, "access_token": accessToken,
		"update": map[string]any{"account_selection_enabled": true}})["link_token"].(string)

	got, err := emulatorBackend{emu}.LinkToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdateMode || !got.AccountSelection || len(got.AccountIDs) != 5 || len(got.Accounts) != 6 ||
		slices.Contains(got.AccountIDs, got.Accounts[5].ID) {
		t.Errorf("Token = %+v, want update mode with selection offering 6 accounts, the Item holding the first 5", got)
	}
}
