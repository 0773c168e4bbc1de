package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/redirect"
)

// TestService_RescuedWebviewSession_EventsOnce: a webview session with
// Link webhooks on reports each event twice, by a plaidlink://event
// redirect (no event_id, request_id empty) and in the EVENTS webhook (with
// Plaid's event_id). Redirects before the webhook and after it, each event
// is recorded once.
func TestService_RescuedWebviewSession_EventsOnce(t *testing.T) {
	e := mustEnv(t)
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	var (
		mu     sync.Mutex
		events []byte
	)
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var h struct {
			Code string `json:"webhook_code"`
		}
		if json.Unmarshal(body, &h) == nil && h.Code == "EVENTS" {
			mu.Lock()
			events = body
			mu.Unlock()
		}
	}))
	t.Cleanup(hooks.Close)
	e.emu.SetLinkWebhooksForWebview(true)

	tok, err := e.svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", Webhook: hooks.URL})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.svc.LinkToken(ctx, tok.GetLinkToken())
	if err != nil {
		t.Fatal(err)
	}
	sessionID, _, err := e.emu.CompleteLinkSession(tok.GetLinkToken(), "ins_109508", "")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	body := events
	mu.Unlock()
	var hook struct {
		Events []struct {
			Name      string            `json:"event_name"`
			ID        string            `json:"event_id"`
			Timestamp string            `json:"timestamp"`
			Metadata  map[string]string `json:"event_metadata"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &hook); err != nil || len(hook.Events) < 4 {
		t.Fatalf("EVENTS webhook = %s, %v; want the session's events", body, err)
	}
	// The redirect the webview sends for each event: every key present,
	// request_id empty, no event_id.
	submit := func(i int) {
		t.Helper()
		ev := hook.Events[i]
		md := ev.Metadata
		u := "plaidlink://event?event_name=" + ev.Name + "&error_type&error_code&error_message&exit_status" +
			"&institution_id=" + md["institution_id"] + "&institution_name=" + url.QueryEscape(md["institution_name"]) +
			"&institution_search_query&mfa_type&view_name=" + md["view_name"] + "&request_id" +
			"&link_session_id=" + sessionID + "&timestamp=" + url.QueryEscape(ev.Timestamp)
		r, err := redirect.Parse(u)
		if err != nil {
			t.Fatalf("Parse(%s): %v", u, err)
		}
		if _, err := e.svc.SubmitRedirect(ctx, stored, r); err != nil {
			t.Fatalf("SubmitRedirect(%s): %v", ev.Name, err)
		}
	}
	submit(0)
	submit(1)
	deliver(t, e.svc, "", string(body))
	for i := 1; i < len(hook.Events); i++ {
		submit(i)
	}

	sess, err := e.db.GetLinkSession(ctx, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.GetEvents()) != len(hook.Events) {
		var got []string
		for _, ev := range sess.GetEvents() {
			got = append(got, ev.GetEventName()+"/"+ev.GetViewName()+"/"+ev.GetEventId())
		}
		t.Fatalf("session events = %v; want the %d events once each", got, len(hook.Events))
	}
}
