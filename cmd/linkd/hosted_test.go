package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// mustHostedToken creates a Hosted Link token reporting to linkd's own
// webhook route; itemID makes it an update-mode token.
func mustHostedToken(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient, user, itemID string) *linkdv1.LinkToken {
	t.Helper()
	resp, err := c.CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{
		ClientUserId: user, ItemId: itemID, Webhook: ts.BaseURL + "/v1/webhooks/plaid",
		HostedLink: &linkdv1.HostedLink{CompletionRedirectUri: "myapp://link-done", IsMobileApp: true},
	})
	if err != nil {
		t.Fatalf("CreateLinkToken(hosted_link): %v", err)
	}
	tok := resp.GetLinkToken()
	if tok.GetHostedLinkUrl() == "" || tok.GetWebviewUrl() != "" {
		t.Fatalf("hosted_link_url = %q, webview_url = %q; want only hosted_link_url", tok.GetHostedLinkUrl(), tok.GetWebviewUrl())
	}
	return tok
}

// mustLinkTokenState fails unless GetLinkToken reports want, and returns
// the answer.
func mustLinkTokenState(t *testing.T, c linkdv1.LinkServiceClient, linkToken string, want linkdv1.LinkTokenState) *linkdv1.GetLinkTokenResponse {
	t.Helper()
	got, err := c.GetLinkToken(context.Background(), &linkdv1.GetLinkTokenRequest{LinkToken: linkToken})
	if err != nil {
		t.Fatalf("GetLinkToken: %v", err)
	}
	if got.GetState() != want {
		t.Fatalf("state = %v, want %v", got.GetState(), want)
	}
	return got
}

// TestLinkd_HostedLink runs a Hosted Link session completed by the sandbox
// RPC: the LINK webhooks create the Item once, its events are recorded once
// (by event_id), GetLinkToken shows the outcome, and the conversion report
// counts the session; then the Item is repaired through a Hosted Link
// update-mode token, and an exit is reported as such.
func TestLinkd_HostedLink(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok := mustHostedToken(t, ts, c, "hosted-1", "")
		if !strings.Contains(tok.GetHostedLinkUrl(), "token=") {
			t.Errorf("hosted_link_url = %q, want the Link page with the token", tok.GetHostedLinkUrl())
		}
		mustLinkTokenState(t, c, tok.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_OPEN)

		done, err := c.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{
			LinkToken: tok.GetLinkToken(), InstitutionId: "ins_109508"})
		if err != nil {
			t.Fatalf("CompleteSandboxLinkSession: %v", err)
		}
		ts.WaitRefreshed(t)
		items, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "hosted-1"})
		if err != nil {
			t.Fatalf("ListItems: %v", err)
		}
		if len(items.GetItems()) != 1 {
			t.Fatalf("items = %v, want one", items.GetItems())
		}
		item := items.GetItems()[0]
		if item.GetInstitutionId() != "ins_109508" || len(item.GetAccounts()) == 0 || item.GetLinkSessionId() != done.GetLinkSessionId() {
			t.Errorf("item = %v, want ins_109508 with accounts from /link/token/get, session %s", item, done.GetLinkSessionId())
		}
		if n := ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
			t.Errorf("exchanges = %d, want 1 (ITEM_ADD_RESULT and SESSION_FINISHED both name the token)", n)
		}

		sess, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: done.GetLinkSessionId()})
		if err != nil {
			t.Fatalf("GetLinkSession: %v", err)
		}
		s := sess.GetSession()
		if s.GetItemId() != item.GetItemId() || s.GetConnected().GetInstitutionId() != "ins_109508" || s.GetConnected().GetPublicToken() != "" {
			t.Errorf("session = %v, want connected to the Item without a public token", s)
		}
		seen := map[string]bool{}
		for _, e := range s.GetEvents() {
			if e.GetEventId() == "" || seen[e.GetEventId()] {
				t.Errorf("event %s: event_id %q missing or repeated", e.GetEventName(), e.GetEventId())
			}
			seen[e.GetEventId()] = true
		}
		if names := eventNames(s); names[0] != "OPEN" || names[len(names)-1] != "HANDOFF" {
			t.Errorf("events = %v, want OPEN ... HANDOFF", names)
		}

		got := mustLinkTokenState(t, c, tok.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED)
		if len(got.GetLinkSessions()) != 1 || got.GetLinkSessions()[0].GetItemId() != item.GetItemId() {
			t.Errorf("link_sessions = %v, want the one session with the Item", got.GetLinkSessions())
		}
		if got.GetLinkToken().GetHostedLinkUrl() != tok.GetHostedLinkUrl() {
			t.Errorf("link_token = %v, want the token as issued", got.GetLinkToken())
		}

		conv, err := c.GetLinkConversion(ctx, &linkdv1.GetLinkConversionRequest{})
		if err != nil {
			t.Fatalf("GetLinkConversion: %v", err)
		}
		if conv.GetSessions() != 1 || conv.GetSessionsConverted() != 1 || conv.GetSessionsOpened() != 1 {
			t.Errorf("conversion = %v, want one session, opened and converted", conv)
		}

		// The same bank again: the institution and accounts come from
		// /link/token/get before the exchange, so the duplicate is refused
		// unbilled, and the refusal is an answer (no redelivery needed).
		again := mustHostedToken(t, ts, c, "hosted-1", "")
		if _, err := c.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{
			LinkToken: again.GetLinkToken(), InstitutionId: "ins_109508"}); err != nil {
			t.Fatalf("CompleteSandboxLinkSession(duplicate): %v", err)
		}
		if n := ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
			t.Errorf("exchanges = %d after a duplicate, want still 1", n)
		}
		if items, _ := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "hosted-1"}); len(items.GetItems()) != 1 {
			t.Errorf("items = %d after a duplicate, want 1", len(items.GetItems()))
		}

		// Update mode: the Item's login breaks, a Hosted Link session
		// repairs it; nothing is exchanged and no Item is added.
		if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
			t.Fatalf("ResetSandboxItemLogin: %v", err)
		}
		if _, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "hosted-1", ItemId: item.GetItemId(),
			Transactions: &linkdv1.LinkTokenTransactions{DaysRequested: 365}}); err == nil {
			t.Errorf("update mode with transactions.days_requested was accepted")
		}
		upd := mustHostedToken(t, ts, c, "hosted-1", item.GetItemId())
		if !upd.GetUpdateMode() {
			t.Errorf("update-mode hosted token = %v", upd)
		}
		if _, err := c.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{LinkToken: upd.GetLinkToken()}); err != nil {
			t.Fatalf("CompleteSandboxLinkSession(update mode): %v", err)
		}
		mustLinkTokenState(t, c, upd.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED)
		mustStatus(t, c, item.GetItemId(), linkdv1.ItemStatus_ITEM_STATUS_GOOD)
		if n := ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
			t.Errorf("exchanges = %d after update mode, want still 1", n)
		}

		// An exit: no Item, the token says EXITED, the session its status.
		ex := mustHostedToken(t, ts, c, "hosted-1", "")
		exited, err := c.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{
			LinkToken: ex.GetLinkToken(), InstitutionId: "ins_109511", ExitStatus: "requires_credentials"})
		if err != nil {
			t.Fatalf("CompleteSandboxLinkSession(exit): %v", err)
		}
		got = mustLinkTokenState(t, c, ex.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXITED)
		if st := got.GetLinkSessions()[0].GetExit().GetStatus(); st != "requires_credentials" {
			t.Errorf("exit status = %q, want requires_credentials", st)
		}
		sess, err = c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: exited.GetLinkSessionId()})
		if err != nil || sess.GetSession().GetExit().GetStatus() != "requires_credentials" {
			t.Errorf("exited session = %v, %v", sess, err)
		}
		if items, _ := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "hosted-1"}); len(items.GetItems()) != 1 {
			t.Errorf("items = %d after an exit, want 1", len(items.GetItems()))
		}
	})
}

// eventNames lists a session's event names in order.
func eventNames(s *linkdv1.LinkSession) []string {
	var out []string
	for _, e := range s.GetEvents() {
		out = append(out, e.GetEventName())
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

// TestLinkd_WebviewRescuedByItemAddResult: with Link webhooks on for
// webview sessions (a Plaid account setting), a webview session whose
// connected redirect never reached linkd still creates its Item, once,
// and the late redirect finds that Item.
func TestLinkd_WebviewRescuedByItemAddResult(t *testing.T) {
	for _, tr := range []string{"gRPC", "REST"} {
		t.Run(tr, func(t *testing.T) {
			ts := MustStartServer(t, "LINKD_EMULATOR_LINK_WEBHOOKS=true")
			c := ts.GRPC(t)
			if tr == "REST" {
				c = ts.REST()
			}
			testWebviewRescued(t, ts, c)
		})
	}
}

func testWebviewRescued(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
	ctx := context.Background()
	resp, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "rescued", Webhook: ts.BaseURL + "/v1/webhooks/plaid"})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	tok := resp.GetLinkToken()
	// The user finishes Link in the webview; the app crashes before it
	// submits the connected redirect. Only the webhooks arrive.
	sessionID, publicToken, err := ts.emulator.CompleteLinkSession(tok.GetLinkToken(), "ins_109508", "")
	if err != nil {
		t.Fatalf("emulator Link session: %v", err)
	}
	ts.WaitRefreshed(t)
	items, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "rescued"})
	if err != nil || len(items.GetItems()) != 1 {
		t.Fatalf("items = %v, %v; want the rescued Item", items, err)
	}
	rescued := items.GetItems()[0]

	// The app comes back and submits the redirect after all.
	late, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{LinkToken: tok.GetLinkToken(), Url: connectedURL(publicToken, sessionID)})
	if err != nil {
		t.Fatalf("late SubmitRedirect: %v", err)
	}
	if late.GetItem().GetItemId() != rescued.GetItemId() {
		t.Errorf("late redirect item = %v, want the rescued %s", late.GetItem(), rescued.GetItemId())
	}
	if n := ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
	if items, _ := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "rescued"}); len(items.GetItems()) != 1 {
		t.Errorf("items = %d, want 1", len(items.GetItems()))
	}
	// The public token went through a webhook body, /link/token/get and
	// a redirect: it is in no log line.
	if strings.Contains(ts.Logs.String(), publicToken) {
		t.Errorf("a log line holds the public token")
	}
	// Nor does the database: the LINK webhook bodies are kept redacted and
	// sessions keep no public token.
	if raw, err := os.ReadFile(ts.Config.DBPath); err != nil {
		t.Fatal(err)
	} else if strings.Contains(string(raw), publicToken) || strings.Contains(string(raw), tok.GetLinkToken()+`"`) {
		t.Errorf("the database file holds the public token or a webhook's plain link_token")
	}
}

// TestLinkd_HostedLinkValidation: Hosted Link and sandbox completion refuse
// bad input naming the field.
func TestLinkd_HostedLinkValidation(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	ctx := context.Background()
	_, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "u",
		HostedLink: &linkdv1.HostedLink{UrlLifetimeSeconds: 22 * 24 * 3600}})
	if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "hosted_link.url_lifetime_seconds" {
		t.Errorf("field = %q", badRequestField(st))
	}
	tok := mustHostedToken(t, ts, c, "u", "")
	_, err = c.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{LinkToken: tok.GetLinkToken(), InstitutionId: "ins_999999"})
	if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "institution_id" {
		t.Errorf("field = %q", badRequestField(st))
	}
	// Only the exit statuses Plaid documents: a made-up one is no
	// session Link could end.
	_, err = c.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{LinkToken: tok.GetLinkToken(), ExitStatus: "gave_up"})
	if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "exit_status" {
		t.Errorf("field = %q", badRequestField(st))
	}
	_, err = c.GetLinkToken(ctx, &linkdv1.GetLinkTokenRequest{LinkToken: "link-sandbox-00000000-0000-0000-0000-000000000000"})
	if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "link_token" {
		t.Errorf("field = %q", badRequestField(st))
	}
}

// TestLinkd_HostedLinkLostWebhooks: every LINK webhook of a Hosted Link
// session is lost; once the session should have finished, the recovery
// job asks /link/token/get and files it as the webhooks would have: one
// Item, one exchange, the events, and the token is not asked about again.
func TestLinkd_HostedLinkLostWebhooks(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	ts := MustStartServerAt(t, clk.Now)
	c, rest := ts.GRPC(t), ts.REST()
	ctx := context.Background()
	tok := mustHostedToken(t, ts, c, "lost-1", "")
	ts.emulator.LoseWebhooks(3) // EVENTS, ITEM_ADD_RESULT, SESSION_FINISHED
	done, err := rest.CompleteSandboxLinkSession(ctx, &linkdv1.CompleteSandboxLinkSessionRequest{LinkToken: tok.GetLinkToken(), InstitutionId: "ins_109508"})
	if err != nil {
		t.Fatalf("CompleteSandboxLinkSession: %v", err)
	}
	if items, _ := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "lost-1"}); len(items.GetItems()) != 0 {
		t.Fatalf("items = %v before recovery, want none (the webhooks were lost)", items.GetItems())
	}
	// Plaid knows the session finished; linkd has not filed it yet.
	got := mustLinkTokenState(t, rest, tok.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED)
	if s := got.GetLinkSessions(); len(s) != 1 || s[0].GetItemId() != "" || s[0].GetConnected().GetPublicToken() != "" {
		t.Fatalf("link_sessions = %v, want Plaid's view, no Item, no public token", s)
	}

	if n, err := ts.svc.CheckHostedLinkTokens(ctx); err != nil || n != 0 {
		t.Fatalf("CheckHostedLinkTokens before due = %d, %v; want 0", n, err)
	}
	clk.Advance(16 * time.Minute)
	if n, err := ts.svc.CheckHostedLinkTokens(ctx); err != nil || n != 1 {
		t.Fatalf("CheckHostedLinkTokens = %d, %v; want 1", n, err)
	}
	ts.WaitRefreshed(t)
	items, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "lost-1"})
	if err != nil || len(items.GetItems()) != 1 {
		t.Fatalf("items = %v, %v; want the recovered Item", items, err)
	}
	if it := items.GetItems()[0]; it.GetInstitutionId() != "ins_109508" || it.GetLinkSessionId() != done.GetLinkSessionId() {
		t.Errorf("item = %v", it)
	}
	if n := ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
	sess, err := rest.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: done.GetLinkSessionId()})
	if err != nil || eventNames(sess.GetSession())[0] != "OPEN" || sess.GetSession().GetItemId() == "" {
		t.Errorf("session = %v, %v; want its events and the Item", sess, err)
	}
	got = mustLinkTokenState(t, c, tok.GetLinkToken(), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED)
	if got.GetLinkSessions()[0].GetItemId() != items.GetItems()[0].GetItemId() {
		t.Errorf("link_sessions = %v, want linkd's session with the Item", got.GetLinkSessions())
	}
	clk.Advance(time.Hour)
	if n, err := ts.svc.CheckHostedLinkTokens(ctx); err != nil || n != 0 {
		t.Errorf("CheckHostedLinkTokens after settling = %d, %v; want 0 (not asked again)", n, err)
	}
	if n := ts.emulator.Calls("/item/public_token/exchange"); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
}

// TestLinkd_LinkTokenOptionsREST: over REST the options are Plaid's JSON,
// `"hosted_link": {}` asks for Hosted Link as with Plaid, and a bad option
// is a 400 naming the field.
func TestLinkd_LinkTokenOptionsREST(t *testing.T) {
	ts := MustStartServer(t)
	auth := "Bearer " + ts.APIKey
	status, body := ts.Do(t, "POST", "/v1/link/token/create", auth, `{"client_user_id":"opts-1","hosted_link":{},
		"user":{"legal_name":"Ada Lovelace","phone_number":"+14155550011","email_address":"ada@example.com","date_of_birth":"1815-12-10",
		        "address":{"street":"1 Main St","city":"Springfield","region":"IL","postal_code":"62701","country":"US"}},
		"optional_products":["liabilities"],"required_if_supported_products":["identity"],"additional_consented_products":["investments"],
		"account_filters":{"depository":{"account_subtypes":["checking","savings"]}},
		"link_customization_name":"default","transactions":{"days_requested":730},"institution_id":"ins_109508"}`)
	if status != 200 || !strings.Contains(body, `"hosted_link_url"`) || strings.Contains(body, `"webview_url"`) {
		t.Fatalf("POST /v1/link/token/create = %d %s; want a Hosted Link token", status, body)
	}
	for _, tt := range []struct{ body, field string }{
		{`{"client_user_id":"opts-1","transactions":{"days_requested":731}}`, "transactions.days_requested"},
		{`{"client_user_id":"opts-1","hosted_link":{"url_lifetime_seconds":-5}}`, "hosted_link.url_lifetime_seconds"},
		{`{"client_user_id":"opts-1","user":{"phone_number":"555"}}`, "user.phone_number"},
		{`{"client_user_id":"opts-1","account_filters":{"crypto":{"account_subtypes":["all"]}}}`, "account_filters.crypto"},
		{`{"client_user_id":"opts-1","android_package_name":"com.example.app"}`, "android_package_name"},
		{`{"client_user_id":"opts-1","update":{"account_selection_enabled":true}}`, "update.account_selection_enabled"},
	} {
		status, body := ts.Do(t, "POST", "/v1/link/token/create", auth, tt.body)
		if status != 400 || !strings.Contains(body, `"field":"`+tt.field+`"`) {
			t.Errorf("%s: %d %s; want 400 naming %s", tt.body, status, body, tt.field)
		}
	}
}
