package plaidemu_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd/plaidemu"
)

// mustWebhookItem makes an Item at institutionID whose webhook is url, with
// the given sandbox options besides, and returns its access token and
// item_id.
func mustWebhookItem(t *testing.T, e *plaidemu.Emulator, institutionID, url string, products []string, options map[string]any) (accessToken, itemID string) {
	t.Helper()
	opts := map[string]any{"webhook": url}
	for k, v := range options {
		opts[k] = v
	}
	r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": institutionID, "initial_products": products, "options": opts})
	WantOK(t, r)
	r = Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": r.Str("public_token")})
	WantOK(t, r)
	return r.Str("access_token"), r.Str("item_id")
}

// itemOf returns /item/get's item.
func itemOf(t *testing.T, e *plaidemu.Emulator, accessToken string) map[string]any {
	t.Helper()
	r := Post(t, e, "/item/get", map[string]any{"access_token": accessToken})
	WantOK(t, r)
	return r.Body["item"].(map[string]any)
}

// accountIDsOf returns /accounts/get's account_ids, and the
// verification_status of each that has one.
func accountIDsOf(t *testing.T, e *plaidemu.Emulator, accessToken string) ([]string, map[string]string) {
	t.Helper()
	r := Post(t, e, "/accounts/get", map[string]any{"access_token": accessToken})
	WantOK(t, r)
	var ids []string
	verification := map[string]string{}
	for _, a := range r.Body["accounts"].([]any) {
		acc := a.(map[string]any)
		ids = append(ids, acc["account_id"].(string))
		if v, ok := acc["verification_status"].(string); ok {
			verification[acc["account_id"].(string)] = v
		}
	}
	return ids, verification
}

// updateModeToken creates an update-mode link token for the Item, with
// account selection when asked.
func updateModeToken(t *testing.T, e *plaidemu.Emulator, accessToken string, accountSelection bool) string {
	t.Helper()
	body := linkTokenBody()
	delete(body, "products")
	body["access_token"] = accessToken
	if accountSelection {
		body["update"] = map[string]any{"account_selection_enabled": true}
	}
	return MustCreateLinkToken(t, e, body)
}

// oneHook fails unless exactly one webhook arrived, of that type and code
// for itemID, and returns its body.
func oneHook(t *testing.T, hooks []receivedWebhook, typ, code, itemID string) map[string]any {
	t.Helper()
	if len(hooks) != 1 || hooks[0].body["webhook_type"] != typ || hooks[0].body["webhook_code"] != code || hooks[0].body["item_id"] != itemID {
		t.Fatalf("webhooks = %v, want one %s %s for %s", hooks, typ, code, itemID)
	}
	if hooks[0].body["environment"] != "sandbox" {
		t.Errorf("environment = %v", hooks[0].body["environment"])
	}
	return hooks[0].body
}

func TestEmulator_ItemGet(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	url, _ := mustReceiver(t)
	withHook, _ := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
	if it := itemOf(t, e, withHook); it["webhook"] != url || it["consent_expiration_time"] != nil {
		t.Errorf("item = %v, want webhook %s and consent_expiration_time null", it, url)
	}
	plain, _ := MustCreateItem(t, e, "ins_109508")
	it := itemOf(t, e, plain)
	if v, ok := it["webhook"]; !ok || v != nil {
		t.Errorf("webhook = %v (present %v), want null", v, ok)
	}
	if v, ok := it["consent_expiration_time"]; !ok || v != nil {
		t.Errorf("consent_expiration_time = %v (present %v), want null", v, ok)
	}
}

func TestEmulator_SetItemState(t *testing.T) {
	clock := NewClock()
	e := MustStartEmulator(t, clock)
	url, received := mustReceiver(t)
	inAWeek := clock.Now().Add(7 * 24 * time.Hour).UTC().Format(time.RFC3339)
	inAYear := clock.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	// wantRenewed fails unless a finished update-mode session (err its
	// error) moved the Item's consent a year ahead, and sent no webhook.
	wantRenewed := func(t *testing.T, err error, token string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if hooks := received(); len(hooks) != 0 {
			t.Errorf("webhooks after update mode = %v, want none", hooks)
		}
		if got := itemOf(t, e, token)["consent_expiration_time"]; got != inAYear {
			t.Errorf("consent_expiration_time after update mode = %v, want %s", got, inAYear)
		}
	}

	t.Run("PendingExpiration", func(t *testing.T) {
		token, id := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
		WantOK(t, Post(t, e, "/emulator/item/set_state", map[string]any{"access_token": token, "state": "PENDING_EXPIRATION"}))
		hook := oneHook(t, received(), "ITEM", "PENDING_EXPIRATION", id)
		if hook["consent_expiration_time"] != inAWeek {
			t.Errorf("consent_expiration_time = %v, want %s", hook["consent_expiration_time"], inAWeek)
		}
		if got := itemOf(t, e, token)["consent_expiration_time"]; got != inAWeek {
			t.Errorf("/item/get consent_expiration_time = %v, want %s", got, inAWeek)
		}
		// Update mode renews the consent; no webhook follows.
		_, _, err := e.CompleteLinkSession(updateModeToken(t, e, token, false), "", "")
		wantRenewed(t, err, token)
	})

	t.Run("PendingDisconnect", func(t *testing.T) {
		token, id := mustWebhookItem(t, e, "ins_109511", url, []string{"auth"}, nil)
		if err := e.SetItemState(token, plaidemu.StatePendingDisconnect, "INSTITUTION_MIGRATION"); err != nil {
			t.Fatal(err)
		}
		hook := oneHook(t, received(), "ITEM", "PENDING_DISCONNECT", id)
		if hook["reason"] != "INSTITUTION_MIGRATION" || hook["disconnect_time"] != inAWeek {
			t.Errorf("reason, disconnect_time = %v, %v; want INSTITUTION_MIGRATION, %s", hook["reason"], hook["disconnect_time"], inAWeek)
		}
		if got := itemOf(t, e, token)["consent_expiration_time"]; got != inAWeek {
			t.Errorf("/item/get consent_expiration_time = %v, want %s", got, inAWeek)
		}
		// The reason defaults to INSTITUTION_TOKEN_EXPIRATION.
		WantOK(t, Post(t, e, "/emulator/item/set_state", map[string]any{"access_token": token, "state": "PENDING_DISCONNECT"}))
		if hook := oneHook(t, received(), "ITEM", "PENDING_DISCONNECT", id); hook["reason"] != "INSTITUTION_TOKEN_EXPIRATION" {
			t.Errorf("reason = %v, want INSTITUTION_TOKEN_EXPIRATION", hook["reason"])
		}
		// The Link page's way through update mode renews it as well.
		_, err := e.CreatePublicToken(updateModeToken(t, e, token, false), "ins_109511", nil)
		wantRenewed(t, err, token)
	})

	t.Run("LoginRepaired", func(t *testing.T) {
		token, id := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
		msg := WantError(t, Post(t, e, "/emulator/item/set_state", map[string]any{"access_token": token, "state": "LOGIN_REPAIRED"}), 400, "INVALID_REQUEST", "INVALID_FIELD")
		if !strings.Contains(msg, "reset_login") {
			t.Errorf("error_message = %q, want it to say how to break the login", msg)
		}
		WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": token}))
		oneHook(t, received(), "ITEM", "ERROR", id)
		// /item/get shows the error, for whoever missed the webhook.
		if perr, _ := itemOf(t, e, token)["error"].(map[string]any); perr["error_code"] != "ITEM_LOGIN_REQUIRED" || perr["error_type"] != "ITEM_ERROR" {
			t.Errorf("/item/get error = %v, want ITEM_ERROR/ITEM_LOGIN_REQUIRED", perr)
		}
		// Repaired outside the app: LOGIN_REPAIRED, and the data works again.
		if err := e.SetItemState(token, plaidemu.StateLoginRepaired, ""); err != nil {
			t.Fatal(err)
		}
		oneHook(t, received(), "ITEM", "LOGIN_REPAIRED", id)
		accountIDsOf(t, e, token)
		if got := itemOf(t, e, token)["error"]; got != nil {
			t.Errorf("/item/get error after the repair = %v, want null", got)
		}
		// fire_webhook's LOGIN_REPAIRED repairs too.
		WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": token}))
		WantOK(t, Post(t, e, "/sandbox/item/fire_webhook", map[string]any{"access_token": token, "webhook_code": "LOGIN_REPAIRED"}))
		if hooks := received(); len(hooks) != 2 || hooks[1].body["webhook_code"] != "LOGIN_REPAIRED" {
			t.Errorf("webhooks = %v, want ERROR then LOGIN_REPAIRED", hooks)
		}
		accountIDsOf(t, e, token)
	})

	t.Run("ErrInvalidField", func(t *testing.T) {
		token, _ := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
		for _, body := range []map[string]any{
			{"access_token": token, "state": "GOOD"},
			{"access_token": token, "state": "PENDING_DISCONNECT", "reason": "BORED"},
			{"access_token": token, "state": "PENDING_EXPIRATION", "reason": "INSTITUTION_MIGRATION"},
		} {
			WantError(t, Post(t, e, "/emulator/item/set_state", body), 400, "INVALID_REQUEST", "INVALID_FIELD")
		}
		WantError(t, Post(t, e, "/emulator/item/set_state", map[string]any{"access_token": token}), 400, "INVALID_REQUEST", "MISSING_FIELDS")
		WantErrorCode(t, e.SetItemState("access-sandbox-nope", plaidemu.StatePendingExpiration, ""), "INVALID_ACCESS_TOKEN")
		if hooks := received(); len(hooks) != 0 {
			t.Errorf("webhooks after refused calls = %v", hooks)
		}
	})

	if strings.HasPrefix(plaidemu.EmulatorSetItemStatePath, "/sandbox/") {
		t.Errorf("EmulatorSetItemStatePath %s looks like one of Plaid's sandbox paths", plaidemu.EmulatorSetItemStatePath)
	}
}

func TestEmulator_NewAccountsAvailable(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	url, received := mustReceiver(t)
	token, id := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
	before, _ := accountIDsOf(t, e, token)

	WantOK(t, Post(t, e, "/sandbox/item/fire_webhook", map[string]any{"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}))
	oneHook(t, received(), "ITEM", "NEW_ACCOUNTS_AVAILABLE", id)
	if now, _ := accountIDsOf(t, e, token); !slices.Equal(now, before) {
		t.Fatalf("accounts right after NEW_ACCOUNTS_AVAILABLE = %v, want %v", now, before)
	}

	// Update mode without account selection keeps the Item's accounts,
	// though Link knows of the new one.
	plain := updateModeToken(t, e, token, false)
	info, err := e.LinkTokenInfo(plain)
	if err != nil {
		t.Fatal(err)
	}
	if info.AccountSelection || len(info.Accounts) != len(before)+1 || !slices.Equal(info.AccountIDs, before) {
		t.Fatalf("LinkTokenInfo = %+v, want %d accounts offered, %v held, no selection", info, len(before)+1, before)
	}
	newID := info.Accounts[len(info.Accounts)-1].ID
	if slices.Contains(before, newID) {
		t.Fatalf("new account %s is one of the old ones", newID)
	}
	if _, _, err := e.CompleteLinkSession(plain, "", ""); err != nil {
		t.Fatal(err)
	}
	if now, _ := accountIDsOf(t, e, token); !slices.Equal(now, before) {
		t.Errorf("accounts after update mode without selection = %v, want %v", now, before)
	}

	// With account selection the user picks it, and it joins the Item.
	selecting := updateModeToken(t, e, token, true)
	if info, err = e.LinkTokenInfo(selecting); err != nil || !info.AccountSelection {
		t.Fatalf("LinkTokenInfo = %+v, %v; want AccountSelection", info, err)
	}
	picked := []string{before[0], newID}
	if _, err := e.CreatePublicToken(selecting, "ins_109508", picked); err != nil {
		t.Fatal(err)
	}
	if now, _ := accountIDsOf(t, e, token); !slices.Equal(now, picked) {
		t.Errorf("accounts after update mode with selection = %v, want %v", now, picked)
	}
	if hooks := received(); len(hooks) != 0 {
		t.Errorf("webhooks after update mode = %v, want none", hooks)
	}
	// Another Item's token cannot pick it.
	other, _ := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
	_, err = e.CreatePublicToken(updateModeToken(t, e, other, true), "ins_109508", []string{newID})
	WantErrorCode(t, err, "INVALID_ACCOUNT_ID")
}

func TestEmulator_UserAccountRevoked(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	url, received := mustReceiver(t)
	token, id := mustWebhookItem(t, e, "ins_109508", url, []string{"auth"}, nil)
	before, _ := accountIDsOf(t, e, token)

	WantOK(t, Post(t, e, "/sandbox/item/fire_webhook", map[string]any{"access_token": token, "webhook_code": "USER_ACCOUNT_REVOKED"}))
	hook := oneHook(t, received(), "ITEM", "USER_ACCOUNT_REVOKED", id)
	revoked, _ := hook["account_id"].(string)
	if !slices.Contains(before, revoked) {
		t.Fatalf("account_id = %v, want one of %v", hook["account_id"], before)
	}
	after, _ := accountIDsOf(t, e, token)
	if slices.Contains(after, revoked) || len(after) != len(before)-1 {
		t.Errorf("accounts after USER_ACCOUNT_REVOKED = %v, want %v without %s", after, before, revoked)
	}
	WantError(t, Post(t, e, "/accounts/get", map[string]any{"access_token": token, "options": map[string]any{"account_ids": []string{revoked}}}), 400, "INVALID_INPUT", "INVALID_ACCOUNT_ID")
}

func TestEmulator_SetVerificationStatus(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	url, received := mustReceiver(t)
	microdeposits := map[string]any{"override_username": plaidemu.MicrodepositsUsername, "override_password": plaidemu.MicrodepositsPassword}
	set := func(token, accountID, status string) Response {
		return Post(t, e, "/sandbox/item/set_verification_status", map[string]any{"access_token": token, "account_id": accountID, "verification_status": status})
	}

	for _, tc := range []struct{ status, code string }{
		{plaidemu.VerificationAutomatic, "AUTOMATICALLY_VERIFIED"},
		{plaidemu.VerificationExpired, "VERIFICATION_EXPIRED"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			token, id := mustWebhookItem(t, e, plaidemu.MicrodepositsInstitutionID, url, []string{"auth"}, microdeposits)
			ids, verification := accountIDsOf(t, e, token)
			if len(ids) != 1 || verification[ids[0]] != plaidemu.VerificationPendingAutomatic {
				t.Fatalf("accounts = %v %v, want one pending_automatic_verification", ids, verification)
			}
			WantOK(t, set(token, ids[0], tc.status))
			if hook := oneHook(t, received(), "AUTH", tc.code, id); hook["account_id"] != ids[0] {
				t.Errorf("account_id = %v, want %s", hook["account_id"], ids[0])
			}
			if _, verification = accountIDsOf(t, e, token); verification[ids[0]] != tc.status {
				t.Errorf("verification_status = %q, want %q", verification[ids[0]], tc.status)
			}
			// Only a pending account changes.
			WantError(t, set(token, ids[0], tc.status), 400, "INVALID_REQUEST", "INVALID_FIELD")
		})
	}

	t.Run("Refused", func(t *testing.T) {
		token, _ := mustWebhookItem(t, e, plaidemu.MicrodepositsInstitutionID, url, []string{"auth"}, microdeposits)
		ids, _ := accountIDsOf(t, e, token)
		WantError(t, set(token, ids[0], "manually_verified"), 400, "INVALID_REQUEST", "INVALID_FIELD")
		WantError(t, set(token, "no-such-account", plaidemu.VerificationAutomatic), 400, "INVALID_INPUT", "INVALID_ACCOUNT_ID")
		WantError(t, Post(t, e, "/sandbox/item/set_verification_status", map[string]any{"access_token": token}), 400, "INVALID_REQUEST", "MISSING_FIELDS")
		// An Item linked with pass_good has nothing pending.
		plain, _ := mustWebhookItem(t, e, plaidemu.MicrodepositsInstitutionID, url, []string{"auth"}, nil)
		plainIDs, verification := accountIDsOf(t, e, plain)
		if len(verification) != 0 {
			t.Errorf("verification_status of a pass_good Item = %v, want none", verification)
		}
		WantError(t, set(plain, plainIDs[0], plaidemu.VerificationAutomatic), 400, "INVALID_REQUEST", "INVALID_FIELD")
		// An Item without auth.
		noAuth, _ := mustWebhookItem(t, e, "ins_109508", url, []string{"transactions"}, nil)
		noAuthIDs, _ := accountIDsOf(t, e, noAuth)
		WantError(t, set(noAuth, noAuthIDs[0], plaidemu.VerificationAutomatic), 400, "SANDBOX_ERROR", "SANDBOX_PRODUCT_NOT_ENABLED")
		if hooks := received(); len(hooks) != 0 {
			t.Errorf("webhooks after refused calls = %v", hooks)
		}
		// Test credentials the sandbox does not know.
		r := Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"},
			"options": map[string]any{"override_username": "user_good", "override_password": "wrong"}})
		WantError(t, r, 400, "ITEM_ERROR", "INVALID_CREDENTIALS")
		r = Post(t, e, "/sandbox/public_token/create", map[string]any{"institution_id": plaidemu.MicrodepositsInstitutionID, "initial_products": []string{"transactions"},
			"options": microdeposits})
		WantError(t, r, 400, "INVALID_REQUEST", "INVALID_FIELD")
	})
}

func TestEmulator_ItemWebhookUpdate(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	oldURL, oldReceived := mustReceiver(t)
	newURL, newReceived := mustReceiver(t)
	token, id := mustWebhookItem(t, e, "ins_109508", oldURL, []string{"auth"}, nil)

	r := Post(t, e, "/item/webhook/update", map[string]any{"access_token": token, "webhook": newURL})
	WantOK(t, r)
	if got := r.Body["item"].(map[string]any)["webhook"]; got != newURL {
		t.Errorf("response item webhook = %v, want %s", got, newURL)
	}
	if hook := oneHook(t, newReceived(), "ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED", id); hook["new_webhook_url"] != newURL {
		t.Errorf("new_webhook_url = %v, want %s", hook["new_webhook_url"], newURL)
	}
	if hooks := oldReceived(); len(hooks) != 0 {
		t.Errorf("old URL received %v", hooks)
	}
	if got := itemOf(t, e, token)["webhook"]; got != newURL {
		t.Errorf("/item/get webhook = %v, want %s", got, newURL)
	}
	// Later webhooks go to the new URL.
	WantOK(t, Post(t, e, "/sandbox/item/reset_login", map[string]any{"access_token": token}))
	oneHook(t, newReceived(), "ITEM", "ERROR", id)

	WantError(t, Post(t, e, "/item/webhook/update", map[string]any{"access_token": token, "webhook": "not a url"}), 400, "INVALID_REQUEST", "INVALID_FIELD")
	// null removes it.
	WantOK(t, Post(t, e, "/item/webhook/update", map[string]any{"access_token": token, "webhook": nil}))
	if got := itemOf(t, e, token)["webhook"]; got != nil {
		t.Errorf("/item/get webhook after null = %v, want null", got)
	}
	if hooks := append(oldReceived(), newReceived()...); len(hooks) != 0 {
		t.Errorf("webhooks after removing the URL = %v", hooks)
	}
}

// TestStart_StatePath_ItemLife checks that what happened to an Item after
// Link survives a restart: consent expiration, added accounts, revoked
// accounts and verification statuses.
func TestStart_StatePath_ItemLife(t *testing.T) {
	clock := NewClock()
	path := filepath.Join(t.TempDir(), "emulator.json")
	e := MustStartEmulatorAt(t, clock, path)
	url, _ := mustReceiver(t)
	token, _ := mustWebhookItem(t, e, plaidemu.MicrodepositsInstitutionID, url, []string{"auth"},
		map[string]any{"override_username": plaidemu.MicrodepositsUsername, "override_password": plaidemu.MicrodepositsPassword})
	if err := e.SetItemState(token, plaidemu.StatePendingExpiration, ""); err != nil {
		t.Fatal(err)
	}
	WantOK(t, Post(t, e, "/sandbox/item/fire_webhook", map[string]any{"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}))
	ids, _ := accountIDsOf(t, e, token)
	WantOK(t, Post(t, e, "/sandbox/item/set_verification_status", map[string]any{"access_token": token, "account_id": ids[0], "verification_status": "automatically_verified"}))
	before := itemOf(t, e, token)
	info, err := e.LinkTokenInfo(updateModeToken(t, e, token, true))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()

	again := MustStartEmulatorAt(t, clock, path)
	after := itemOf(t, again, token)
	if after["consent_expiration_time"] != before["consent_expiration_time"] || after["consent_expiration_time"] == nil {
		t.Errorf("consent_expiration_time after restart = %v, want %v", after["consent_expiration_time"], before["consent_expiration_time"])
	}
	gotIDs, verification := accountIDsOf(t, again, token)
	if !slices.Equal(gotIDs, ids) || verification[ids[0]] != "automatically_verified" {
		t.Errorf("accounts after restart = %v %v, want %v verified", gotIDs, verification, ids)
	}
	againInfo, err := again.LinkTokenInfo(updateModeToken(t, again, token, true))
	if err != nil {
		t.Fatal(err)
	}
	if len(againInfo.Accounts) != len(info.Accounts) || againInfo.Accounts[len(info.Accounts)-1].ID != info.Accounts[len(info.Accounts)-1].ID {
		t.Errorf("accounts offered after restart = %v, want %v", againInfo.Accounts, info.Accounts)
	}
}
