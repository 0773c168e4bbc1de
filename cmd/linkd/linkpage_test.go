package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/linkpage"
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
	if ins := b.Institutions(); len(ins) != 5 || len(ins[0].Accounts) == 0 || !ins[3].OAuth || ins[3].OAuthPopup || !ins[4].OAuthPopup {
		t.Errorf("Institutions = %+v", ins)
	}
}
