package main

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd/client"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

// exitURL builds an exit redirect carrying a Link error.
func exitURL(status, errorType, errorCode, sessionID string) string {
	return "plaidlink://exit?status=" + status + "&error_type=" + errorType + "&error_code=" + errorCode +
		"&error_message=x&institution_id=ins_109508&link_session_id=" + sessionID
}

// connectedURLWith is connectedURL for one account of the given name and mask.
func connectedURLWith(publicToken, sessionID, name, mask string) string {
	accounts := `[{"_id":"acc-x","meta":{"name":"` + name + `","number":"` + mask + `"}}]`
	return "plaidlink://connected?public_token=" + url.QueryEscape(publicToken) +
		"&institution_id=ins_109508&institution_name=First+Platypus+Bank" +
		"&accounts=" + url.QueryEscape(accounts) + "&link_session_id=" + sessionID
}

// mustConnect links a new Item for user through a connected redirect.
func mustConnect(t *testing.T, c linkdv1.LinkServiceClient, user, sessionID string) *linkdv1.Item {
	t.Helper()
	tok, publicToken := mustLink(t, c, user)
	resp, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, sessionID), LinkToken: tok.GetLinkToken()})
	if err != nil {
		t.Fatalf("SubmitRedirect(connected): %v", err)
	}
	return resp.GetItem()
}

// mustItemsIn returns the ids of user's Items in one of statuses.
func mustItemsIn(t *testing.T, c linkdv1.LinkServiceClient, user string, statuses ...linkdv1.ItemStatus) []string {
	t.Helper()
	resp, err := c.ListItems(context.Background(), &linkdv1.ListItemsRequest{ClientUserId: user, Statuses: statuses})
	if err != nil {
		t.Fatalf("ListItems(%v): %v", statuses, err)
	}
	var ids []string
	for _, it := range resp.GetItems() {
		ids = append(ids, it.GetItemId())
	}
	return ids
}

// TestLinkd_UpdateMode walks the repair loop: link, reset the login at
// Plaid, learn of it from an update-mode session's exit, repair it through
// a second update-mode session, all with one exchange.
func TestLinkd_UpdateMode(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		item := mustConnect(t, c, "user-1", "sess-new")
		const (
			good          = linkdv1.ItemStatus_ITEM_STATUS_GOOD
			loginRequired = linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED
		)
		if _, err := c.ResetSandboxItemLogin(ctx, &linkdv1.ResetSandboxItemLoginRequest{ItemId: item.GetItemId()}); err != nil {
			t.Fatalf("ResetSandboxItemLogin: %v", err)
		}

		start := time.Now()
		upd, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: item.GetItemId()})
		if err != nil {
			t.Fatalf("CreateLinkToken(update): %v", err)
		}
		tok := upd.GetLinkToken()
		if !tok.GetUpdateMode() || tok.GetItemId() != item.GetItemId() {
			t.Errorf("update token = %v, want update_mode for %s", tok, item.GetItemId())
		}
		if exp := tok.GetExpiration().AsTime(); exp.After(start.Add(31*time.Minute)) || exp.Before(start.Add(29*time.Minute)) {
			t.Errorf("update token expiration = %v, want about 30 minutes from now", exp)
		}

		// The user meets ITEM_LOGIN_REQUIRED in Link and leaves.
		exit, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
			Url: exitURL("requires_credentials", "ITEM_ERROR", "ITEM_LOGIN_REQUIRED", "sess-upd-1"), LinkToken: tok.GetLinkToken(),
		})
		if err != nil {
			t.Fatalf("SubmitRedirect(exit): %v", err)
		}
		if exit.GetItem().GetStatus() != loginRequired || exit.GetItem().GetErrorCode() != "ITEM_LOGIN_REQUIRED" || exit.GetItem().GetStatusChangedAt() == nil {
			t.Errorf("item after exit = %v, want LOGIN_REQUIRED", exit.GetItem())
		}
		if got := mustItemsIn(t, c, "user-1", loginRequired); len(got) != 1 || got[0] != item.GetItemId() {
			t.Errorf("LOGIN_REQUIRED items = %v, want [%s]", got, item.GetItemId())
		}
		if got := mustItemsIn(t, c, "user-1", good); len(got) != 0 {
			t.Errorf("GOOD items = %v, want none", got)
		}

		// A second update-mode session succeeds: Link hands over a public
		// token that linkd does not exchange.
		upd2, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: item.GetItemId()})
		if err != nil {
			t.Fatalf("CreateLinkToken(update 2): %v", err)
		}
		publicToken, err := ts.emulator.CreatePublicToken(upd2.GetLinkToken().GetLinkToken(), "ins_109508", nil)
		if err != nil {
			t.Fatalf("emulator Link session: %v", err)
		}
		done, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
			Url: connectedURL(publicToken, "sess-upd-2"), LinkToken: upd2.GetLinkToken().GetLinkToken(), ClientUserId: "user-1",
		})
		if err != nil {
			t.Fatalf("SubmitRedirect(connected, update): %v", err)
		}
		if it := done.GetItem(); it.GetItemId() != item.GetItemId() || it.GetStatus() != good || it.GetErrorCode() != "" {
			t.Errorf("item after update = %v, want %s GOOD", it, item.GetItemId())
		}
		if got := mustItemsIn(t, c, "user-1", good, loginRequired); len(got) != 1 {
			t.Errorf("items = %v, want exactly the one", got)
		}
		if n := ts.emulator.Calls(exchangePath); n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1 in total", n)
		}
	})
}

func TestLinkd_UpdateModeErrors(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		item := mustConnect(t, c, "user-1", "sess-1")
		_, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-2", ItemId: item.GetItemId()})
		wantCode(t, err, codes.NotFound)
		_, err = c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: item.GetItemId(), Products: []string{"auth"}})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "products" {
			t.Errorf("field = %q, want products", badRequestField(st))
		}
		_, err = c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: "no-such-item"})
		wantCode(t, err, codes.NotFound)
		_, err = c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-1", Statuses: []linkdv1.ItemStatus{linkdv1.ItemStatus_ITEM_STATUS_UNSPECIFIED}})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "statuses[0]" {
			t.Errorf("field = %q, want statuses[0]", badRequestField(st))
		}
	})
}

// TestLinkd_ItemHealthFromPlaid: a Plaid error naming the Item moves it.
func TestLinkd_ItemHealthFromPlaid(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	item := mustConnect(t, c, "user-1", "sess-1")
	ts.emulator.FailNext(removePath, plaidemu.Error{Type: plaidemu.TypeItemError, Code: "ITEM_LOGIN_REQUIRED", Message: "login required"})
	_, err := c.RemoveItem(context.Background(), &linkdv1.RemoveItemRequest{ItemId: item.GetItemId()})
	wantCode(t, err, codes.FailedPrecondition)
	got, err := c.GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
	if err != nil || got.GetItem().GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Errorf("GetItem = %v, %v; want LOGIN_REQUIRED", got, err)
	}
	// An error that is not the Item's changes nothing.
	ts.emulator.FailNext(removePath, plaidemu.Error{Status: 400, Type: "INSTITUTION_ERROR", Code: "INSTITUTION_DOWN", Message: "the bank is down"})
	_, err = c.RemoveItem(context.Background(), &linkdv1.RemoveItemRequest{ItemId: item.GetItemId()})
	wantCode(t, err, codes.Unavailable)
	got, _ = c.GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
	if got.GetItem().GetErrorCode() != "ITEM_LOGIN_REQUIRED" {
		t.Errorf("item after an API error = %v, want unchanged", got.GetItem())
	}
}

// duplicateOf returns the item_id of a DUPLICATE_ITEM error, or "".
func duplicateOf(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == "linkd" && info.GetReason() == "DUPLICATE_ITEM" {
			return info.GetMetadata()["item_id"]
		}
	}
	return ""
}

func TestLinkd_DuplicateItems(t *testing.T) {
	submit := func(t *testing.T, c linkdv1.LinkServiceClient, user, session, name, mask string) (*linkdv1.Item, error) {
		t.Helper()
		tok, publicToken := mustLink(t, c, user)
		resp, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{
			Url: connectedURLWith(publicToken, session, name, mask), LinkToken: tok.GetLinkToken(),
		})
		return resp.GetItem(), err
	}
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		first, err := submit(t, c, "user-1", "sess-1", "Plaid Checking", "0000")
		if err != nil {
			t.Fatal(err)
		}
		_, err = submit(t, c, "user-1", "sess-2", "Plaid Checking", "0000")
		if st := wantCode(t, err, codes.AlreadyExists); st != nil && duplicateOf(err) != first.GetItemId() {
			t.Errorf("duplicate error %v does not name item %s", st.Details(), first.GetItemId())
		}
		if n := ts.emulator.Calls(exchangePath); n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1: a duplicate is not exchanged", n)
		}
		// Plaid's account 1111 is on the first Item too (it holds all the
		// sandbox accounts); an account it lacks, or another user, is new.
		_, err = submit(t, c, "user-1", "sess-2b", "Plaid Saving", "1111")
		wantCode(t, err, codes.AlreadyExists)
		if _, err := submit(t, c, "user-1", "sess-3", "Joint Checking", "9999"); err != nil {
			t.Errorf("another account: %v", err)
		}
		if _, err := submit(t, c, "user-2", "sess-4", "Plaid Checking", "0000"); err != nil {
			t.Errorf("another user: %v", err)
		}
		// Without name or mask, the institution alone decides.
		_, err = submit(t, c, "user-2", "sess-5", "", "")
		wantCode(t, err, codes.AlreadyExists)
	})
	t.Run("AllUsers", func(t *testing.T) {
		ts := MustStartServer(t, "LINKD_DUPLICATE_ITEMS=all")
		c := ts.GRPC(t)
		first, err := submit(t, c, "user-1", "sess-1", "Plaid Checking", "0000")
		if err != nil {
			t.Fatal(err)
		}
		_, err = submit(t, c, "user-2", "sess-2", "Plaid Checking", "0000")
		if wantCode(t, err, codes.AlreadyExists); duplicateOf(err) != first.GetItemId() {
			t.Errorf("duplicate of %q, want %q", duplicateOf(err), first.GetItemId())
		}
	})
	t.Run("Off", func(t *testing.T) {
		ts := MustStartServer(t, "LINKD_DUPLICATE_ITEMS=off")
		c := ts.GRPC(t)
		for _, s := range []string{"sess-1", "sess-2"} {
			if _, err := submit(t, c, "user-1", s, "Plaid Checking", "0000"); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
}

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestLinkd_InvalidLinkToken(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, _ := mustLink(t, c, "user-1")
		resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
			Url: exitURL("", "INVALID_INPUT", "INVALID_LINK_TOKEN", "sess-bad"), LinkToken: tok.GetLinkToken(),
		})
		if err != nil {
			t.Fatalf("SubmitRedirect(exit): %v", err)
		}
		fresh := resp.GetNewLinkToken()
		if fresh.GetLinkToken() == "" || fresh.GetLinkToken() == tok.GetLinkToken() || fresh.GetClientUserId() != "user-1" || fresh.GetUpdateMode() {
			t.Fatalf("new_link_token = %v, want a fresh new-Item token for user-1", fresh)
		}
		// The fresh token works: at Plaid, and at linkd.
		publicToken, err := ts.emulator.CreatePublicToken(fresh.GetLinkToken(), "ins_109508", nil)
		if err != nil {
			t.Fatalf("emulator Link session with the fresh token: %v", err)
		}
		done, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-good"), LinkToken: fresh.GetLinkToken()})
		if err != nil || done.GetItem().GetItemId() == "" || done.GetNewLinkToken() != nil {
			t.Fatalf("SubmitRedirect(connected, fresh token) = %v, %v", done, err)
		}

		// An ordinary exit gets no new token.
		plain, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: "plaidlink://exit?status=requires_credentials&link_session_id=sess-quit", LinkToken: tok.GetLinkToken()})
		if err != nil || plain.GetNewLinkToken() != nil {
			t.Errorf("plain exit = %v, %v; want no new token", plain, err)
		}

		// Update mode renews in update mode.
		upd, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: done.GetItem().GetItemId()})
		if err != nil {
			t.Fatal(err)
		}
		resp, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
			Url: exitURL("", "INVALID_INPUT", "INVALID_LINK_TOKEN", "sess-bad-upd"), LinkToken: upd.GetLinkToken().GetLinkToken(),
		})
		if err != nil || !resp.GetNewLinkToken().GetUpdateMode() || resp.GetNewLinkToken().GetItemId() != done.GetItem().GetItemId() {
			t.Errorf("update-mode renewal = %v, %v", resp.GetNewLinkToken(), err)
		}
		if resp.GetItem() != nil {
			t.Errorf("INVALID_LINK_TOKEN changed the item: %v", resp.GetItem())
		}

		// Another user's token is refused as if unknown.
		_, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("OPEN", "", "sess-other", time.Now()), LinkToken: tok.GetLinkToken(), ClientUserId: "user-2"})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "link_token" {
			t.Errorf("field = %q, want link_token", badRequestField(st))
		}
		if _, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-other"}); status.Code(err) != codes.NotFound {
			t.Errorf("refused redirect was recorded: %v", err)
		}
	})
}

func TestLinkd_ExpiredLinkToken(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	ts := MustStartServerAt(t, clk.Now)
	c := ts.GRPC(t)
	ctx := context.Background()
	tok, _ := mustLink(t, c, "user-1")

	resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("OPEN", "", "sess-1", clk.Now()), LinkToken: tok.GetLinkToken()})
	if err != nil || resp.GetNewLinkToken() != nil {
		t.Fatalf("before expiry: %v, %v; want no new token", resp, err)
	}
	clk.Advance(plaidemu.LinkTokenLifetime)
	resp, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("TRANSITION_VIEW", "ERROR", "sess-1", clk.Now()), LinkToken: tok.GetLinkToken()})
	if err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	fresh := resp.GetNewLinkToken()
	if fresh.GetLinkToken() == "" || !fresh.GetExpiration().AsTime().Equal(clk.Now().Add(plaidemu.LinkTokenLifetime)) {
		t.Fatalf("new_link_token = %v, want one expiring %v", fresh, clk.Now().Add(plaidemu.LinkTokenLifetime))
	}
	if _, err := ts.emulator.CreatePublicToken(fresh.GetLinkToken(), "ins_109508", nil); err != nil {
		t.Errorf("fresh token refused by Plaid: %v", err)
	}

	// Every later redirect on the dead token, resubmitted or not, gets the
	// same fresh token from that one Plaid call.
	created := ts.emulator.Calls("/link/token/create")
	for i := range 5 {
		resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("TRANSITION_VIEW", "ERROR", "sess-1", clk.Now()), LinkToken: tok.GetLinkToken()})
		if err != nil || resp.GetNewLinkToken().GetLinkToken() != fresh.GetLinkToken() {
			t.Fatalf("resubmit %d: %v, %v; want new_link_token %s again", i, resp.GetNewLinkToken(), err, fresh.GetLinkToken())
		}
	}
	if n := ts.emulator.Calls("/link/token/create") - created; n != 0 {
		t.Errorf("resubmits made %d more Plaid link tokens, want 0", n)
	}

	// When no fresh token can be had, the redirect is still acknowledged.
	tok2, _ := mustLink(t, c, "user-2")
	clk.Advance(plaidemu.LinkTokenLifetime)
	for range 4 { // outlast the client's retries
		ts.emulator.FailNext("/link/token/create", plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR"})
	}
	resp, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("EXIT", "", "sess-2", clk.Now()), LinkToken: tok2.GetLinkToken()})
	if err != nil || resp.GetNewLinkToken() != nil || resp.GetEvent().GetEventName() != "EXIT" {
		t.Errorf("renewal failing: %v, %v; want the event acknowledged without a new token", resp, err)
	}
}

// TestLinkd_RedirectWithoutSession: an exit's link_session_id may come
// empty (Link closed, or refused its token, before a session began) or
// not at all. Such an exit is answered like any other (with
// INVALID_LINK_TOKEN it still gets a fresh token) and, having no session
// to be filed in, is filed in none. A connected redirect always names its
// session (Link's onSuccess metadata does), and one that does not is
// refused before Plaid is asked: its Item's session is written with the
// Item. An event without one is refused too (TestLinkd_Errors).
func TestLinkd_RedirectWithoutSession(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, _ := mustLink(t, c, "user-1")
		for _, u := range []string{
			"plaidlink://exit",
			"plaidlink://exit?status=&error_type=&error_code=&link_session_id=&request_id=",
			"plaidlink://exit?status=requires_credentials&institution_id=ins_109508",
		} {
			resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken()})
			if err != nil || resp.GetExit() == nil || resp.GetNewLinkToken() != nil {
				t.Errorf("SubmitRedirect(%s) = %v, %v; want the exit, no new token", u, resp, err)
			}
		}
		resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
			Url: exitURL("", "INVALID_INPUT", "INVALID_LINK_TOKEN", ""), LinkToken: tok.GetLinkToken(),
		})
		if err != nil || resp.GetNewLinkToken().GetLinkToken() == "" {
			t.Fatalf("SubmitRedirect(exit INVALID_LINK_TOKEN, no session) = %v, %v; want a fresh token", resp.GetNewLinkToken(), err)
		}
		fresh := resp.GetNewLinkToken()
		publicToken, err := ts.emulator.CreatePublicToken(fresh.GetLinkToken(), "ins_109508", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, ""), LinkToken: fresh.GetLinkToken()})
		if fv := client.FieldViolations(err); status.Code(err) != codes.InvalidArgument || len(fv) != 1 || fv[0].GetField() != "url.link_session_id" {
			t.Errorf("SubmitRedirect(connected, no session) = %v; want INVALID_ARGUMENT naming url.link_session_id", err)
		}
		done, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-after"), LinkToken: fresh.GetLinkToken()})
		if err != nil || done.GetItem().GetItemId() == "" {
			t.Fatalf("SubmitRedirect(connected) after the refused one = %v, %v: the refusal spent the public token", done, err)
		}
	})
}
