package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/jwt/jwttest"
	"github.com/linkd/linkd/plaidemu"
)

// TestLinkd_DuplicateItems_OtherUserHidden: with duplicate checks across all
// users, an end user whose link repeats another user's Item is refused
// without learning that Item's id, even with a made-up redirect; a service
// is told the id.
func TestLinkd_DuplicateItems_OtherUserHidden(t *testing.T) {
	k := jwttest.MustECKey(t, "ec-dup")
	env := append(userEnv(t, k), "LINKD_DUPLICATE_ITEMS=all", "LINKD_API_KEYS=svc-key")
	callerTransports(t, env, func(t *testing.T, ts *testServer, as func(bearer string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		svc := as("svc-key")
		tok, publicToken := mustLink(t, svc, "victim")
		first, err := svc.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-victim"), LinkToken: tok.GetLinkToken()})
		if err != nil {
			t.Fatal(err)
		}
		victimItem := first.GetItem().GetItemId()

		mallory := as(userToken(t, k, "mallory"))
		mtok, err := mallory.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// A forged connected redirect naming only the institution.
		forged := "plaidlink://connected?public_token=public-sandbox-00000000-0000-0000-0000-000000000001&institution_id=ins_109508&link_session_id=sess-mallory&accounts=" + url.QueryEscape("[]")
		_, err = mallory.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: forged, LinkToken: mtok.GetLinkToken().GetLinkToken()})
		if st := wantCode(t, err, codes.AlreadyExists); st != nil {
			if strings.Contains(st.Message(), victimItem) || duplicateOf(err) != "" {
				t.Errorf("an end user learned another user's item_id: %v", st.Proto())
			}
		}

		// A service may see which Item it repeats.
		stok, spt := mustLink(t, svc, "someone")
		_, err = svc.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(spt, "sess-someone"), LinkToken: stok.GetLinkToken()})
		if wantCode(t, err, codes.AlreadyExists); duplicateOf(err) != victimItem {
			t.Errorf("service: duplicate of %q, want %q", duplicateOf(err), victimItem)
		}
	})
}

// TestLinkd_UpdateModeConnectedIsChecked: a connected redirect on an
// update-mode token repairs the Item only when Plaid confirms it; a
// resubmitted or made-up one cannot hide a broken login.
func TestLinkd_UpdateModeConnectedIsChecked(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	ctx := context.Background()
	item := mustConnect(t, c, "user-1", "sess-new")
	if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
		t.Fatal(err)
	}
	// This linkd has no webhook URL, so it learns of the broken login as an
	// app would tell it: an exit redirect, here written to the store.
	if _, err := ts.db.UpdateItem(ctx, item.GetItemId(), linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", time.Now())); err != nil {
		t.Fatal(err)
	}
	upd, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: item.GetItemId()})
	if err != nil {
		t.Fatal(err)
	}
	// A made-up connected: Plaid still reports ITEM_LOGIN_REQUIRED.
	resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
		Url: connectedURL("public-sandbox-00000000-0000-0000-0000-00000000000f", "sess-fake"), LinkToken: upd.GetLinkToken().GetLinkToken(),
	})
	if err != nil {
		t.Fatalf("SubmitRedirect(made-up connected): %v", err)
	}
	if st := resp.GetItem().GetStatus(); st != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Errorf("after a made-up connected, status = %v, want LOGIN_REQUIRED", st)
	}
	// The real session repairs it...
	publicToken, err := ts.emulator.CreatePublicToken(upd.GetLinkToken().GetLinkToken(), "ins_109508", nil)
	if err != nil {
		t.Fatal(err)
	}
	real := &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-real"), LinkToken: upd.GetLinkToken().GetLinkToken()}
	if resp, err = c.SubmitRedirect(ctx, real); err != nil || resp.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
		t.Fatalf("real update session: %v, %v; want GOOD", resp.GetItem(), err)
	}
	// ...and once the login breaks again, resubmitting it changes nothing.
	// A made-up connected cannot clear a pending expiry either: a pending
	// Item still answers, which proves nothing.
	if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.UpdateItem(ctx, item.GetItemId(), linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", time.Now())); err != nil {
		t.Fatal(err)
	}
	if resp, err = c.SubmitRedirect(ctx, real); err != nil || resp.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Errorf("resubmitted old connected: %v, %v; want LOGIN_REQUIRED kept", resp.GetItem(), err)
	}
}

// TestMain_RunContextEndsBeforeClose: main cancels Run's context on
// SIGTERM and then calls Close; REST calls in that window still reach gRPC,
// so Close's drain means something for REST too.
func TestMain_RunContextEndsBeforeClose(t *testing.T) {
	m := NewMain()
	m.LogOutput = &syncBuffer{}
	if err := m.ParseFlags([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-delay", "0", "-data-dir", t.TempDir()},
		func(k string) string { return map[string]string{"LINKD_API_KEYS": "k"}[k] }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cancel() // SIGTERM
	ts := &testServer{Main: m, BaseURL: "http://" + m.HTTPAddr(), APIKey: "k"}
	// Several calls over a while: a connection closing on the cancel would
	// fail them once its goroutine ran.
	for i := range 20 {
		code, body := ts.Do(t, "POST", "/v1/link/token/create", "Bearer k", `{"client_user_id":"u1"}`)
		if code != 200 {
			t.Fatalf("REST call %d after the run context ended = %d %s, want 200", i, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLinkd_UpdateModeConnected_PendingAndUnavailable: a pending expiry is
// not "repaired" by a connected redirect (the Item still answers, proving
// nothing), and when Plaid cannot answer the repair is not lost: the call
// says so and a resubmission completes it.
func TestLinkd_UpdateModeConnected_PendingAndUnavailable(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	ctx := context.Background()
	item := mustConnect(t, c, "user-1", "sess-new")
	upd, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: item.GetItemId()})
	if err != nil {
		t.Fatal(err)
	}
	made := &linkdv1.SubmitRedirectRequest{Url: connectedURL("public-sandbox-00000000-0000-0000-0000-00000000000e", "sess-made"), LinkToken: upd.GetLinkToken().GetLinkToken()}

	if _, err := ts.db.UpdateItem(ctx, item.GetItemId(), linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION, "", time.Now())); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.SubmitRedirect(ctx, made); err != nil || resp.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION {
		t.Errorf("made-up connected on a pending Item: %v, %v; want PENDING_EXPIRATION kept", resp.GetItem(), err)
	}

	if _, err := ts.db.UpdateItem(ctx, item.GetItemId(), linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_ERROR, "INSTITUTION_DOWN", time.Now())); err != nil {
		t.Fatal(err)
	}
	for range 4 { // every retry of the client's
		ts.emulator.FailNext("/accounts/get", plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR"})
	}
	_, err = c.SubmitRedirect(ctx, made)
	wantCode(t, err, codes.Unavailable)
	resp, err := c.SubmitRedirect(ctx, made) // Plaid answers now
	if err != nil || resp.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
		t.Errorf("resubmitted after Plaid recovered: %v, %v; want GOOD", resp.GetItem(), err)
	}
}

// TestLinkd_SubmitRedirect_InstitutionIDChecked: a connected redirect's
// institution_id is indexed by every store (Postgres keeps it in a text
// column, where a NUL byte or a few KiB fail every insert), so one that is
// not a Plaid id is INVALID_ARGUMENT naming url.institution_id before Plaid
// is called: the public token stays unspent and no Item is made.
func TestLinkd_SubmitRedirect_InstitutionIDChecked(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, publicToken := mustLink(t, c, "user-inst")
		good := connectedURL(publicToken, "sess-inst")
		for name, inst := range map[string]string{
			"NUL":    "ins%00",
			"Huge":   "ins_" + strings.Repeat("9", 4000),
			"Slash":  "ins%2F..%2F1",
			"Spaces": "ins+1",
		} {
			bad := strings.Replace(good, "institution_id=ins_109508", "institution_id="+inst, 1)
			_, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: bad, LinkToken: tok.GetLinkToken()})
			if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "url.institution_id" {
				t.Errorf("%s: field = %q, want url.institution_id (%v)", name, badRequestField(st), st.Message())
			}
		}
		items, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-inst"})
		if err != nil {
			t.Fatal(err)
		}
		if len(items.GetItems()) != 0 {
			t.Fatalf("refused redirects made %d Items", len(items.GetItems()))
		}
		// The token was never spent: the real redirect still links.
		resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: good, LinkToken: tok.GetLinkToken()})
		if err != nil {
			t.Fatalf("the good redirect after the refused ones: %v", err)
		}
		if resp.GetItem().GetInstitutionId() != "ins_109508" {
			t.Errorf("institution_id = %q", resp.GetItem().GetInstitutionId())
		}
	})
}

// TestLinkd_DuplicateItems_Concurrent: connected redirects of one bank
// login from two Link sessions (two public tokens) that arrive together
// make one Item: the duplicate check and the exchange it guards do not
// interleave, so Plaid is asked (and bills) once, and the others are
// ALREADY_EXISTS naming that Item.
func TestLinkd_DuplicateItems_Concurrent(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "dup-client", Secret: "dup-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ts := MustStartServer(t, "PLAID_CLIENT_ID=dup-client", "PLAID_SECRET=dup-secret", "PLAID_BASE_URL="+emu.URL())
	c := ts.GRPC(t)
	ctx := context.Background()
	const n = 4
	tok, _ := mustLink(t, c, "user-twice")
	tokens := make([]string, n)
	for i := range tokens {
		_, tokens[i] = mustLink(t, c, "user-twice")
	}
	before := emu.Calls(exchangePath)
	// Plaid answers slowly, so every redirect is past its duplicate check
	// before the first Item could be stored, unless the check waits.
	emu.SetFaults(plaidemu.Faults{Latency: 200 * time.Millisecond})
	defer emu.SetFaults(plaidemu.Faults{})
	errs := make([]error, n)
	items := make([]string, n)
	done := make(chan int)
	for i := range tokens {
		go func() {
			resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
				Url: connectedURL(tokens[i], "sess-twice-"+string(rune('a'+i))), LinkToken: tok.GetLinkToken(),
			})
			items[i], errs[i] = resp.GetItem().GetItemId(), err
			done <- i
		}()
	}
	for range tokens {
		<-done
	}
	emu.SetFaults(plaidemu.Faults{})
	var linked string
	for i := range tokens {
		switch {
		case errs[i] == nil && linked == "":
			linked = items[i]
		case errs[i] == nil:
			t.Errorf("redirect %d made a second Item %s (first %s)", i, items[i], linked)
		case status.Code(errs[i]) != codes.AlreadyExists:
			t.Errorf("redirect %d: %v, want ALREADY_EXISTS", i, errs[i])
		}
	}
	for i := range tokens {
		if errs[i] != nil && linked != "" && duplicateOf(errs[i]) != linked {
			t.Errorf("redirect %d: duplicate of %q, want %q", i, duplicateOf(errs[i]), linked)
		}
	}
	list, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-twice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetItems()) != 1 {
		t.Errorf("%d Items, want 1", len(list.GetItems()))
	}
	if calls := emu.Calls(exchangePath) - before; calls != 1 {
		t.Errorf("%d exchange calls to Plaid, want 1", calls)
	}
}
