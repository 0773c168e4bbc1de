package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaid"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/service"
)

// clock is a settable clock for a Service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// clockedService returns a Service over e's store and emulator with a
// clock of its own and the default webhook URL webhook.
func clockedService(t *testing.T, e *env, webhook string) (*service.Service, *clock) {
	t.Helper()
	clk := &clock{t: time.Now()}
	svc, err := service.New(service.Config{Plaid: mustPlaid(t, e), Store: e.db, Now: clk.Now, Defaults: service.LinkDefaults{
		ClientName: "test", Products: []string{"transactions"}, CountryCodes: []string{"US"}, Language: "en", Webhook: webhook}})
	if err != nil {
		t.Fatal(err)
	}
	return svc, clk
}

// mustLink links a sandbox Item for user and returns it with Plaid's
// accounts.
func mustLink(t *testing.T, svc *service.Service, user string) *linkdv1.Item {
	t.Helper()
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	pt, _, err := svc.CreateSandboxPublicToken(ctx, "ins_109508", nil, linkd.SandboxLogin{})
	if err != nil {
		t.Fatal(err)
	}
	item, err := svc.ExchangePublicToken(ctx, pt, user)
	if err != nil {
		t.Fatal(err)
	}
	if len(item.GetAccounts()) < 2 {
		t.Fatalf("Item has %d accounts, want Plaid's (two or more)", len(item.GetAccounts()))
	}
	return item
}

// deliveries numbers webhook deliveries, as their signed JWTs' hashes
// would differ.
var deliveries struct {
	sync.Mutex
	n int
}

// deliver applies body as one verified delivery and returns the Item it
// changed; id "" gives a fresh delivery id.
func deliver(t *testing.T, svc *service.Service, id, body string) (*linkdv1.Item, bool) {
	t.Helper()
	if id == "" {
		deliveries.Lock()
		deliveries.n++
		id = fmt.Sprintf("delivery-%d", deliveries.n)
		deliveries.Unlock()
	}
	item, replayed, err := svc.ApplyWebhook(context.Background(), service.Delivery{Body: []byte(body), KeyID: "kid", ID: id})
	if err != nil {
		t.Fatalf("ApplyWebhook(%s): %v", body, err)
	}
	return item, replayed
}

// TestService_ApplyWebhook_Items: the webhooks Plaid sends about an Item's
// accounts and health, as Plaid's models spell them, each land on the
// stored Item, and a replayed delivery changes nothing.
func TestService_ApplyWebhook_Items(t *testing.T) {
	e := mustEnv(t)
	svc, clk := clockedService(t, e, "")
	item := mustLink(t, svc, "user-1")
	id := item.GetItemId()
	acc0, acc1 := item.GetAccounts()[0].GetId(), item.GetAccounts()[1].GetId()
	get := func() *linkdv1.Item {
		t.Helper()
		it, err := e.db.GetItem(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}

	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"NEW_ACCOUNTS_AVAILABLE","item_id":"`+id+`","error":null,"environment":"sandbox"}`)
	if !get().GetNewAccountsAvailable() {
		t.Error("NEW_ACCOUNTS_AVAILABLE did not set new_accounts_available")
	}

	deliver(t, svc, "", `{"webhook_type":"AUTH","webhook_code":"AUTOMATICALLY_VERIFIED","item_id":"`+id+`","account_id":"`+acc0+`","environment":"sandbox"}`)
	deliver(t, svc, "", `{"webhook_type":"AUTH","webhook_code":"VERIFICATION_EXPIRED","item_id":"`+id+`","account_id":"`+acc1+`","environment":"sandbox"}`)
	if got := get().GetAccounts(); got[0].GetVerificationStatus() != "automatically_verified" || got[1].GetVerificationStatus() != "verification_expired" {
		t.Errorf("verification statuses = %q, %q; want automatically_verified, verification_expired", got[0].GetVerificationStatus(), got[1].GetVerificationStatus())
	}

	revoke := `{"webhook_type":"ITEM","webhook_code":"USER_ACCOUNT_REVOKED","item_id":"` + id + `","account_id":"` + acc1 + `","environment":"sandbox"}`
	deliver(t, svc, "revoke-1", revoke)
	for _, a := range get().GetAccounts() {
		if a.GetId() == acc1 {
			t.Errorf("account %s still listed after USER_ACCOUNT_REVOKED", acc1)
		}
	}
	n := len(get().GetAccounts())
	if _, replayed := deliver(t, svc, "revoke-1", revoke); !replayed {
		t.Error("a replayed delivery was applied again")
	}
	if len(get().GetAccounts()) != n {
		t.Error("a replay changed the accounts")
	}

	consent := clk.Now().Add(5 * 24 * time.Hour).UTC().Truncate(time.Second)
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"PENDING_EXPIRATION","item_id":"`+id+`","consent_expiration_time":"`+consent.Format(time.RFC3339)+`","environment":"sandbox"}`)
	if it := get(); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION || !it.GetConsentExpirationTime().AsTime().Equal(consent) {
		t.Errorf("after PENDING_EXPIRATION: status %v, consent %v; want PENDING_EXPIRATION at %v", it.GetStatus(), it.GetConsentExpirationTime().AsTime(), consent)
	}
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"PENDING_DISCONNECT","item_id":"`+id+`","reason":"INSTITUTION_MIGRATION","disconnect_time":"`+consent.Format(time.RFC3339)+`","environment":"sandbox"}`)
	if it := get(); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT || it.GetPendingDisconnectReason() != "INSTITUTION_MIGRATION" {
		t.Errorf("after PENDING_DISCONNECT: status %v, reason %q", it.GetStatus(), it.GetPendingDisconnectReason())
	}
	disconnect := consent.Add(-24 * time.Hour)
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"PENDING_DISCONNECT","item_id":"`+id+`","reason":"INSTITUTION_MIGRATION","disconnect_time":"`+disconnect.Format(time.RFC3339)+`","environment":"sandbox"}`)
	if it := get(); !it.GetDisconnectTime().AsTime().Equal(disconnect) || !it.GetConsentExpirationTime().AsTime().Equal(consent) {
		t.Errorf("after PENDING_DISCONNECT at %v: disconnect_time %v, consent %v; want the disconnect's own, the consent's left at %v",
			disconnect, it.GetDisconnectTime().AsTime(), it.GetConsentExpirationTime().AsTime(), consent)
	}
}

// TestService_ReconcileItems: an Item whose LOGIN_REPAIRED webhook was lost
// is GOOD again after the reconcile walk reads /item/get; a second walk
// within the interval asks Plaid nothing; after the interval it asks again.
func TestService_ReconcileItems(t *testing.T) {
	e := mustEnv(t)
	svc, clk := clockedService(t, e, "")
	item := mustLink(t, svc, "user-1")
	other := mustLink(t, svc, "user-2")
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"ERROR","item_id":"`+item.GetItemId()+`","error":{"error_type":"ITEM_ERROR","error_code":"ITEM_LOGIN_REQUIRED"},"environment":"sandbox"}`)
	ctx := context.Background()
	// The walk asks Plaid after the webhook arrived (at the same instant
	// the webhook would stand: StatusChangedSince).
	clk.Add(time.Second)

	calls := e.emu.Calls("/item/get")
	res, err := svc.ReconcileItems(ctx, time.Hour)
	if err != nil || res.Reconciled != 2 {
		t.Fatalf("ReconcileItems = %+v, %v; want both Items reconciled", res, err)
	}
	if got := e.emu.Calls("/item/get") - calls; got != 2 {
		t.Errorf("/item/get calls = %d, want 2 (one per Item)", got)
	}
	for _, id := range []string{item.GetItemId(), other.GetItemId()} {
		it, err := e.db.GetItem(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || it.GetReconciledAt() == nil {
			t.Errorf("Item %s: status %v, reconciled_at %v; want GOOD and stamped", id, it.GetStatus(), it.GetReconciledAt())
		}
	}

	clk.Add(30 * time.Minute)
	calls = e.emu.Calls("/item/get")
	if res, err := svc.ReconcileItems(ctx, time.Hour); err != nil || res.Reconciled != 0 || e.emu.Calls("/item/get") != calls {
		t.Errorf("within the interval: %+v, %v, %d Plaid calls; want nothing asked", res, err, e.emu.Calls("/item/get")-calls)
	}
	clk.Add(31 * time.Minute)
	if res, err := svc.ReconcileItems(ctx, time.Hour); err != nil || res.Reconciled != 2 {
		t.Errorf("after the interval: %+v, %v; want both Items again", res, err)
	}
}

// TestService_ReconcileItems_Failures: Plaid refusing one Item (a definite
// answer) is recorded and the walk goes on; Plaid unreachable stops the
// walk, and the next walk resumes and compares what was left.
func TestService_ReconcileItems_Failures(t *testing.T) {
	e := mustEnv(t)
	svc, clk := clockedService(t, e, "")
	for i := range 3 {
		mustLink(t, svc, fmt.Sprintf("user-%d", i))
	}
	ctx := context.Background()
	e.emu.FailNext("/item/get", plaidemu.Error{Type: plaidemu.TypeInvalidInput, Code: "INVALID_ACCESS_TOKEN", Message: "injected"})
	res, err := svc.ReconcileItems(ctx, time.Hour)
	if err != nil || res.Failed != 1 || res.Reconciled != 2 {
		t.Fatalf("ReconcileItems with one Item refused = %+v, %v; want 1 failed, 2 reconciled, no error", res, err)
	}

	// A broken Item whose data call Plaid refuses for a reason that is not
	// the Item's (a rate limit) is not checked, and the walk stops there
	// (it would only be refused again): the next pass asks again.
	clk.Add(2 * time.Hour)
	broken := mustLink(t, svc, "user-broken").GetItemId()
	if _, err := e.db.UpdateItem(ctx, broken, linkd.SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED", clk.Now())); err != nil {
		t.Fatal(err)
	}
	for range plaid.DefaultMaxAttempts {
		e.emu.FailNext("/accounts/get", plaidemu.Error{Type: "RATE_LIMIT_EXCEEDED", Code: "ACCOUNTS_LIMIT", Message: "injected"})
	}
	res, err = svc.ReconcileItems(ctx, time.Hour)
	if it, _ := e.db.GetItem(ctx, broken); it.GetReconciledAt() != nil || it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Fatalf("after a rate-limited check (%+v, %v) the Item is %v; want LOGIN_REQUIRED and not reconciled", res, err, it)
	}
	if linkd.ErrorCode(err) != linkd.ERATELIMIT {
		t.Fatalf("ReconcileItems with one check rate-limited = %+v, %v; want the walk stopped, rate limited", res, err)
	}

	clk.Add(2 * time.Hour)
	for range plaid.DefaultMaxAttempts { // every attempt of one call
		e.emu.FailNext("/item/get", plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR", Message: "injected"})
	}
	if res, err := svc.ReconcileItems(ctx, time.Hour); err == nil || linkd.ErrorCode(err) != linkd.EUNAVAILABLE {
		t.Fatalf("ReconcileItems with Plaid down = %+v, %v; want EUNAVAILABLE", res, err)
	}
	// A walk resumes where Plaid stopped the last one, and ends at the
	// last Item; the one after it starts from the first.
	total := 0
	for range 2 {
		res, err := svc.ReconcileItems(ctx, time.Hour)
		if err != nil {
			t.Fatalf("the next walk = %+v, %v; want no error", res, err)
		}
		total += res.Reconciled
	}
	if total < 4 {
		t.Errorf("two walks reconciled %d Items, want every one of the 4 at least once", total)
	}
	if it, _ := e.db.GetItem(ctx, broken); it.GetReconciledAt() == nil || it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
		t.Fatalf("the rate-limited Item after the next walks = %v; want checked, GOOD (Plaid shows it repaired)", it)
	}
}

// TestService_ReconcileItems_MovesWebhooks: with a new configured webhook
// URL, the walk moves the Items Plaid shows on another URL
// (/item/webhook/update, acknowledged at the new URL), records the move,
// and leaves alone an Item whose URL linkd did not know but Plaid shows
// right; a second walk moves nothing.
func TestService_ReconcileItems_MovesWebhooks(t *testing.T) {
	e := mustEnv(t)
	var mu sync.Mutex
	acks := map[string]int{}
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "WEBHOOK_UPDATE_ACKNOWLEDGED") {
			mu.Lock()
			acks[r.URL.Path]++
			mu.Unlock()
		}
	}))
	t.Cleanup(hooks.Close)
	oldURL, newURL := hooks.URL+"/old", hooks.URL+"/new"
	old, _ := clockedService(t, e, oldURL)
	moved := []string{mustLink(t, old, "user-1").GetItemId(), mustLink(t, old, "user-2").GetItemId()}
	svc, clk := clockedService(t, e, newURL)
	right := mustLink(t, svc, "user-3").GetItemId()
	ctx := context.Background()
	// As an Item stored before linkd kept webhook URLs: linkd does not know it.
	if _, err := e.db.UpdateItem(ctx, right, linkd.SetItemWebhook("")); err != nil {
		t.Fatal(err)
	}

	res, err := svc.ReconcileItems(ctx, time.Hour)
	if err != nil || res.Moved != 2 || res.Reconciled != 3 {
		t.Fatalf("ReconcileItems = %+v, %v; want 3 reconciled, 2 moved", res, err)
	}
	if n := e.emu.Calls("/item/webhook/update"); n != 2 {
		t.Errorf("/item/webhook/update calls = %d, want 2", n)
	}
	for _, id := range append(moved, right) {
		if it, _ := e.db.GetItem(ctx, id); it.GetWebhook() != newURL {
			t.Errorf("Item %s webhook = %q, want %q", id, it.GetWebhook(), newURL)
		}
	}
	mu.Lock()
	if acks["/new"] != 2 || acks["/old"] != 0 {
		t.Errorf("WEBHOOK_UPDATE_ACKNOWLEDGED by path = %v, want 2 at /new", acks)
	}
	mu.Unlock()

	clk.Add(2 * time.Hour)
	if res, err := svc.ReconcileItems(ctx, time.Hour); err != nil || res.Moved != 0 || e.emu.Calls("/item/webhook/update") != 2 {
		t.Errorf("second walk = %+v, %v; want nothing moved", res, err)
	}
}

// TestService_ReconcileItems_PendingDisconnect: Plaid's /item/get shows no
// consent expiration for most Items, a PENDING_DISCONNECT one too; the
// walk keeps the pending disconnect until its disconnect_time has passed
// (with Plaid still reporting no error, it was averted).
func TestService_ReconcileItems_PendingDisconnect(t *testing.T) {
	e := mustEnv(t)
	svc, clk := clockedService(t, e, "")
	id := mustLink(t, svc, "user-1").GetItemId()
	ctx := context.Background()
	disconnect := clk.Now().Add(5 * 24 * time.Hour).UTC().Truncate(time.Second)
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"PENDING_DISCONNECT","item_id":"`+id+`","reason":"INSTITUTION_MIGRATION","disconnect_time":"`+disconnect.Format(time.RFC3339)+`","environment":"sandbox"}`)
	clk.Add(time.Second)

	if res, err := svc.ReconcileItems(ctx, time.Hour); err != nil || res.Reconciled != 1 {
		t.Fatalf("ReconcileItems = %+v, %v; want the Item compared", res, err)
	}
	if it, _ := e.db.GetItem(ctx, id); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT || !it.GetDisconnectTime().AsTime().Equal(disconnect) {
		t.Fatalf("after a walk before the disconnect time: %v; want still PENDING_DISCONNECT at %v", it, disconnect)
	}

	clk.Add(6 * 24 * time.Hour)
	if res, err := svc.ReconcileItems(ctx, time.Hour); err != nil || res.Reconciled != 1 {
		t.Fatalf("ReconcileItems = %+v, %v; want the Item compared", res, err)
	}
	if it, _ := e.db.GetItem(ctx, id); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || it.GetDisconnectTime() != nil {
		t.Fatalf("after a walk past the disconnect time, Plaid reporting no error: %v; want GOOD", it)
	}
}

// TestService_SubmitRedirect_MadeUpUpdateModeKeepsPendingDisconnect: a
// connected redirect of an update-mode token is the client's word only.
// Plaid shows the consent past the disconnect time (it was so before the
// notice) and nobody went through update mode: the made-up redirect must
// not clear PENDING_DISCONNECT. The session run for real at Plaid then
// does.
func TestService_SubmitRedirect_MadeUpUpdateModeKeepsPendingDisconnect(t *testing.T) {
	e := mustEnv(t)
	svc, clk := clockedService(t, e, "")
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	id := mustLink(t, svc, "user-1").GetItemId()
	token, err := e.db.AccessToken(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Plaid's consent expires in a week; linkd learns it, then a notice
	// of a disconnect two days before it.
	if err := e.emu.SetItemState(token.Reveal(), plaidemu.StatePendingExpiration, ""); err != nil {
		t.Fatal(err)
	}
	st, err := mustPlaid(t, e).GetItem(ctx, token)
	if err != nil || st.ConsentExpiration.IsZero() {
		t.Fatalf("/item/get = %+v, %v; want a consent expiration", st, err)
	}
	consent := st.ConsentExpiration.UTC()
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"PENDING_EXPIRATION","item_id":"`+id+`","consent_expiration_time":"`+consent.Format(time.RFC3339)+`","environment":"sandbox"}`)
	disconnect := consent.Add(-48 * time.Hour)
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"PENDING_DISCONNECT","item_id":"`+id+`","reason":"INSTITUTION_MIGRATION","disconnect_time":"`+disconnect.Format(time.RFC3339)+`","environment":"sandbox"}`)
	if it, _ := e.db.GetItem(ctx, id); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT {
		t.Fatalf("after PENDING_DISCONNECT: %v", it)
	}
	clk.Add(time.Second) // reads of Plaid come after the webhooks

	upd, err := svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: id})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := svc.LinkToken(ctx, upd.GetLinkToken())
	if err != nil {
		t.Fatal(err)
	}
	madeUp := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: "public-sandbox-made-up", LinkSessionId: "sess-made-up", InstitutionId: "ins_109508"}}}
	if _, err := svc.SubmitRedirect(ctx, stored, madeUp); err != nil {
		t.Fatalf("SubmitRedirect(made up): %v", err)
	}
	if it, _ := e.db.GetItem(ctx, id); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT {
		t.Fatalf("after a made-up update-mode redirect: status %v; want still PENDING_DISCONNECT (no session at Plaid)", it.GetStatus())
	}

	sessionID, publicToken, err := e.emu.CompleteLinkSession(upd.GetLinkToken(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	real := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: publicToken, LinkSessionId: sessionID, InstitutionId: "ins_109508"}}}
	if _, err := svc.SubmitRedirect(ctx, stored, real); err != nil {
		t.Fatalf("SubmitRedirect(real session): %v", err)
	}
	if it, _ := e.db.GetItem(ctx, id); it.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
		t.Fatalf("after the update-mode session Plaid reports: status %v; want GOOD", it.GetStatus())
	}
}

// TestService_SubmitRedirect_UpdateModeNewAccountsAvailable: a connected
// redirect of an update-mode token is the client's word only. For an Item
// flagged new_accounts_available, a made-up one (no session at Plaid), one
// of a session the user exited, and one Plaid cannot check now leave the
// flag; the session run for real at Plaid clears it; and the same
// redirect replayed after a new NEW_ACCOUNTS_AVAILABLE leaves the new
// flag, which that older session did not answer.
func TestService_SubmitRedirect_UpdateModeNewAccountsAvailable(t *testing.T) {
	e := mustEnv(t)
	svc, clk := clockedService(t, e, "")
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	id := mustLink(t, svc, "user-1").GetItemId()
	newAccounts := `{"webhook_type":"ITEM","webhook_code":"NEW_ACCOUNTS_AVAILABLE","item_id":"` + id + `","error":null,"environment":"sandbox"}`
	flagged := func() bool {
		t.Helper()
		it, err := e.db.GetItem(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return it.GetNewAccountsAvailable()
	}
	deliver(t, svc, "", newAccounts)
	if !flagged() {
		t.Fatal("NEW_ACCOUNTS_AVAILABLE did not set new_accounts_available")
	}

	upd, err := svc.IssueLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: id,
		Update: &linkdv1.LinkTokenUpdate{AccountSelectionEnabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := svc.LinkToken(ctx, upd.GetLinkToken())
	if err != nil {
		t.Fatal(err)
	}
	connected := func(publicToken, sessionID string) *linkdv1.WebviewRedirect {
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
			PublicToken: publicToken, LinkSessionId: sessionID, InstitutionId: "ins_109508"}}}
	}
	// keepsFlag submits a connected redirect that must leave the flag.
	keepsFlag := func(what string, r *linkdv1.WebviewRedirect) {
		t.Helper()
		if _, err := svc.SubmitRedirect(ctx, stored, r); err != nil {
			t.Fatalf("SubmitRedirect(%s): %v", what, err)
		}
		if !flagged() {
			t.Fatalf("%s cleared new_accounts_available", what)
		}
	}

	keepsFlag("a made-up update-mode redirect (no session at Plaid)", connected("public-sandbox-made-up", "sess-made-up"))
	exited, _, err := e.emu.CompleteLinkSession(upd.GetLinkToken(), "", "requires_account_selection")
	if err != nil {
		t.Fatal(err)
	}
	keepsFlag("a connected redirect of a session Plaid shows exited", connected("public-sandbox-made-up", exited))

	sessionID, publicToken, err := e.emu.CompleteLinkSession(upd.GetLinkToken(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	real := connected(publicToken, sessionID)
	for range plaid.DefaultMaxAttempts { // every attempt of the one call
		e.emu.FailNext("/link/token/get", plaidemu.Error{Type: plaidemu.TypeAPIError, Code: "INTERNAL_SERVER_ERROR", Message: "injected"})
	}
	if _, err := svc.SubmitRedirect(ctx, stored, real); linkd.ErrorCode(err) != linkd.EUNAVAILABLE {
		t.Fatalf("SubmitRedirect with /link/token/get down = %v, want EUNAVAILABLE (resubmit)", err)
	}
	if !flagged() {
		t.Fatal("new_accounts_available cleared while Plaid could not confirm the session")
	}
	if _, err := svc.SubmitRedirect(ctx, stored, real); err != nil {
		t.Fatalf("SubmitRedirect(real session): %v", err)
	}
	if it, _ := e.db.GetItem(ctx, id); it.GetNewAccountsAvailable() || it.GetNewAccountsAvailableAt() != nil {
		t.Fatalf("after the update-mode session Plaid reports: %v; want new_accounts_available cleared", it)
	}

	// Past the second of the session's finished_at (Plaid's whole
	// seconds), the bank adds another account.
	clk.Add(time.Minute)
	deliver(t, svc, "", newAccounts)
	if !flagged() {
		t.Fatal("a new NEW_ACCOUNTS_AVAILABLE did not set new_accounts_available")
	}
	keepsFlag("the replayed redirect of the session before the new flag", real)
}

// TestService_SubmitRedirect_UpdateModeExitNeverRevokes: an update-mode
// exit or event is the client's word; it may mark the Item broken
// (LOGIN_REQUIRED, which Plaid's next report mends) but never REVOKED,
// which is final: a made-up USER_PERMISSION_REVOKED exit made the Item
// REVOKED for good. Plaid's own webhook still does.
func TestService_SubmitRedirect_UpdateModeExitNeverRevokes(t *testing.T) {
	e := mustEnv(t)
	svc, _ := clockedService(t, e, "")
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	id := mustLink(t, svc, "user-1").GetItemId()
	stored := mustUpdateModeToken(t, svc, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1", ItemId: id})
	status := func() linkdv1.ItemStatus {
		t.Helper()
		it, err := e.db.GetItem(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return it.GetStatus()
	}
	exit := func(session, code string) *linkdv1.WebviewRedirect {
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Exit{Exit: &linkdv1.ExitResult{
			LinkSessionId: session, Error: &linkdv1.LinkError{ErrorType: "ITEM_ERROR", ErrorCode: code}}}}
	}
	if _, err := svc.SubmitRedirect(ctx, stored, exit("sess-revoke", "USER_PERMISSION_REVOKED")); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != linkdv1.ItemStatus_ITEM_STATUS_GOOD {
		t.Fatalf("after a USER_PERMISSION_REVOKED exit the Item is %v, want still GOOD", st)
	}
	if _, err := svc.SubmitRedirect(ctx, stored, exit("sess-login", "ITEM_LOGIN_REQUIRED")); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Fatalf("after an ITEM_LOGIN_REQUIRED exit the Item is %v, want LOGIN_REQUIRED", st)
	}
	deliver(t, svc, "", `{"webhook_type":"ITEM","webhook_code":"USER_PERMISSION_REVOKED","item_id":"`+id+`","error":{"error_type":"ITEM_ERROR","error_code":"USER_PERMISSION_REVOKED"},"environment":"sandbox"}`)
	if st := status(); st != linkdv1.ItemStatus_ITEM_STATUS_REVOKED {
		t.Fatalf("after Plaid's USER_PERMISSION_REVOKED webhook the Item is %v, want REVOKED", st)
	}
}

// mustUpdateModeToken issues the update-mode link token req asks for, as
// stored.
func mustUpdateModeToken(t *testing.T, svc *service.Service, req *linkdv1.CreateLinkTokenRequest) *storagev1.StoredLinkToken {
	t.Helper()
	ctx := linkd.WithCaller(context.Background(), linkd.Caller{Service: true})
	upd, err := svc.IssueLinkToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := svc.LinkToken(ctx, upd.GetLinkToken())
	if err != nil {
		t.Fatal(err)
	}
	return stored
}
