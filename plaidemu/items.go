package plaidemu

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Item life after Link, as Plaid describes it: consent that expires and is
// renewed by update mode, accounts the bank adds (offered by update mode
// with account selection) or the user revokes, automated micro-deposit
// verification, and the Item's webhook URL.

// ConsentLifetime is how far a finished update-mode session moves an Item's
// consent_expiration_time, for an Item whose consent expires. Plaid's
// lifetimes vary by institution and region (PSD2 banks 180 days, the US
// institutions that expire consent about a year); the emulator renews for
// a year.
const ConsentLifetime = 365 * 24 * time.Hour

// PendingNotice is how long before its consent expires, or its disconnect,
// an Item gets PENDING_EXPIRATION or PENDING_DISCONNECT: Plaid sends them
// about 7 days ahead.
const PendingNotice = 7 * 24 * time.Hour

// Verification statuses of an account in Plaid's automated micro-deposit
// flow (the emulator's subset).
const (
	VerificationPendingAutomatic = "pending_automatic_verification"
	VerificationAutomatic        = "automatically_verified"
	VerificationExpired          = "verification_expired"
)

// Sandbox test credentials that make /sandbox/public_token/create link an
// account pending automated micro-deposit verification, as Plaid's Link
// does for user_good / microdeposits_good at Houndstooth Bank: the Item
// holds that one account (Plaid Checking, mask 0000), pending
// automatic verification.
const (
	MicrodepositsInstitutionID = "ins_109512"
	MicrodepositsUsername      = "user_good"
	MicrodepositsPassword      = "microdeposits_good"
	microdepositsMask          = "0000"
)

// Item states only the emulator can put an Item in (Plaid's sandbox cannot
// produce them): SetItemState's states.
const (
	// StatePendingExpiration: the Item's consent expires in PendingNotice;
	// consent_expiration_time is set and ITEM PENDING_EXPIRATION sent.
	StatePendingExpiration = "PENDING_EXPIRATION"
	// StatePendingDisconnect: the Item will be disconnected in
	// PendingNotice; consent_expiration_time is set to then and ITEM
	// PENDING_DISCONNECT sent with reason and disconnect_time.
	StatePendingDisconnect = "PENDING_DISCONNECT"
	// StateLoginRepaired: the user repaired the broken login outside the
	// app (in another app's update mode); ITEM LOGIN_REPAIRED is sent.
	StateLoginRepaired = "LOGIN_REPAIRED"
)

// EmulatorSetItemStatePath is the emulator's own endpoint that puts an
// Item in a state Plaid's sandbox cannot produce (see SetItemState). It
// sits apart from Plaid's /sandbox/ paths so that nobody mistakes it for
// one: real Plaid answers it 404.
const EmulatorSetItemStatePath = "/emulator/item/set_state"

// Reasons Plaid gives in PENDING_DISCONNECT.
var pendingDisconnectReasons = []string{"INSTITUTION_MIGRATION", "INSTITUTION_TOKEN_EXPIRATION"}

// emulatorStates are the states /emulator/item/set_state takes.
var emulatorStates = []string{StatePendingExpiration, StatePendingDisconnect, StateLoginRepaired}

// changeItem applies change to it and saves the state, undoing the change
// when the state cannot be saved. e.mu is held.
func (e *Emulator) changeItem(it *item, change func(*item)) *Error {
	was := *it
	was.accountIDs = slices.Clone(it.accountIDs)
	was.products = slices.Clone(it.products)
	was.verification = maps.Clone(it.verification)
	change(it)
	if perr := e.commitItems(it.accessToken); perr != nil {
		*it = was
		return perr
	}
	return nil
}

// addedAccounts are the accounts the bank added to the Item's login after
// it was linked (NEW_ACCOUNTS_AVAILABLE), with ids of their own.
func addedAccounts(it *item) []Account {
	f := func(v float64) *float64 { return &v }
	out := make([]Account, it.addedAccounts)
	for i := range out {
		out[i] = Account{
			ID: stableID(it.id + "/added/" + fmt.Sprint(i)), Name: "Plaid New Checking",
			OfficialName: "Plaid Gold Standard 0% Interest Checking", Mask: fmt.Sprintf("%04d", 5555+i),
			Type: "depository", Subtype: "checking", Available: f(50), Current: f(50), Currency: "USD",
		}
	}
	return out
}

// availableAccounts are the accounts a Link session at ins may pick: the
// institution's, and for an update-mode session (accessToken set) those
// the bank added to its Item since. e.mu is held.
func (e *Emulator) availableAccounts(ins Institution, accessToken string) []Account {
	if it, ok := e.items[accessToken]; ok && accessToken != "" {
		return append(slices.Clone(ins.Accounts), addedAccounts(it)...)
	}
	return ins.Accounts
}

// itemAccounts are the Item's accounts, in the institution's order. Their
// balances are shared with the institution's: read them only.
func itemAccounts(it *item) []Account {
	ins, _ := sharedInstitution(it.institutionID)
	out := make([]Account, 0, len(it.accountIDs))
	for _, list := range [][]Account{ins.Accounts, addedAccounts(it)} {
		for _, a := range list {
			if slices.Contains(it.accountIDs, a.ID) {
				out = append(out, a)
			}
		}
	}
	return out
}

// finishUpdateMode applies a finished update-mode Link session to its Item,
// as Plaid does: the login is repaired, consent that expires is renewed,
// and with account selection the Item holds the accounts the user picked.
// No webhook follows (Plaid sends LOGIN_REPAIRED only for repairs outside
// the app). e.mu is held.
func (e *Emulator) finishUpdateMode(it *item, lt *linkToken, accountIDs []string) *Error {
	return e.changeItem(it, func(it *item) {
		it.loginRequired = false
		if !it.consentExpires.IsZero() {
			it.consentExpires = e.now().Add(ConsentLifetime)
		}
		if lt.accountSelection {
			it.accountIDs = slices.Clone(accountIDs)
		}
	})
}

// setPendingExpiration puts it in PENDING_EXPIRATION: consent expires in
// PendingNotice. e.mu is held.
func (e *Emulator) setPendingExpiration(it *item) *Error {
	return e.setPending(it, "PENDING_EXPIRATION", func(at string) map[string]any {
		return map[string]any{"consent_expiration_time": at}
	})
}

// setPendingDisconnect puts it in PENDING_DISCONNECT for reason: it will be
// disconnected in PendingNotice, when its consent expires. e.mu is held.
func (e *Emulator) setPendingDisconnect(it *item, reason string) *Error {
	return e.setPending(it, "PENDING_DISCONNECT", func(at string) map[string]any {
		return map[string]any{"reason": reason, "disconnect_time": at}
	})
}

// setPending makes its consent expire in PendingNotice and queues the ITEM
// webhook code with fields(that time). e.mu is held.
func (e *Emulator) setPending(it *item, code string, fields func(at string) map[string]any) *Error {
	at := e.now().Add(PendingNotice).UTC().Truncate(time.Second)
	if perr := e.changeItem(it, func(it *item) { it.consentExpires = at }); perr != nil {
		return perr
	}
	e.queueItemWebhook(it, "ITEM", code, fields(at.Format(time.RFC3339)))
	return nil
}

// emulatorItemSetState serves /emulator/item/set_state, the emulator's own
// endpoint (Plaid has none like it) for the Item states Plaid's sandbox
// cannot produce: state is one of emulatorStates; reason (PENDING_DISCONNECT
// only, default INSTITUTION_TOKEN_EXPIRATION) is one of Plaid's reasons.
// LOGIN_REPAIRED needs an Item whose login is broken
// (/sandbox/item/reset_login).
func (e *Emulator) emulatorItemSetState(f *fields) (answer, *Error) {
	it, perr := e.itemFromRequest(f)
	if perr != nil {
		return nil, perr
	}
	state := f.str("state", true)
	reason := f.str("reason", false)
	f.oneOf("state", emulatorStates, state)
	f.oneOf("reason", pendingDisconnectReasons, reason)
	if reason != "" && state != StatePendingDisconnect {
		f.fail("reason is only for state PENDING_DISCONNECT")
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	switch state {
	case StatePendingExpiration:
		perr = e.setPendingExpiration(it)
	case StatePendingDisconnect:
		if reason == "" {
			reason = "INSTITUTION_TOKEN_EXPIRATION"
		}
		perr = e.setPendingDisconnect(it, reason)
	case StateLoginRepaired:
		if !it.loginRequired {
			return nil, errInvalidField("state LOGIN_REPAIRED needs an Item in ITEM_LOGIN_REQUIRED; break its login with /sandbox/item/reset_login first")
		}
		if perr = e.changeItem(it, func(it *item) { it.loginRequired = false }); perr == nil {
			e.queueItemWebhook(it, "ITEM", "LOGIN_REPAIRED", nil)
		}
	}
	if perr != nil {
		return nil, perr
	}
	return object{"item": itemJSON(it)}, nil
}

// SetItemState is /emulator/item/set_state for Go tests: it puts the Item
// of accessToken in state (StatePendingExpiration, StatePendingDisconnect
// with reason, "" meaning INSTITUTION_TOKEN_EXPIRATION, or
// StateLoginRepaired) and sends its webhook, delivered before it returns.
// It returns an *Error: INVALID_ACCESS_TOKEN, ITEM_NOT_FOUND, or
// INVALID_FIELD for an unknown state or reason, or LOGIN_REPAIRED on an
// Item whose login is not broken.
func (e *Emulator) SetItemState(accessToken, state, reason string) error {
	body := map[string]any{"access_token": accessToken, "state": state}
	if reason != "" {
		body["reason"] = reason
	}
	_, perr := e.call(e.emulatorItemSetState, body)
	if perr != nil {
		return perr
	}
	return nil
}

// addNewAccount makes one more account available at the Item's
// institution, as a bank does when the user opens one: NEW_ACCOUNTS_AVAILABLE
// follows. It joins the Item only through update mode with account
// selection. e.mu is held.
func (e *Emulator) addNewAccount(it *item) *Error {
	if perr := e.changeItem(it, func(it *item) { it.addedAccounts++ }); perr != nil {
		return perr
	}
	e.queueItemWebhook(it, "ITEM", "NEW_ACCOUNTS_AVAILABLE", nil)
	return nil
}

// revokeAccount removes the Item's first account, as when the user revokes
// access to it at the bank or in Plaid Portal: USER_ACCOUNT_REVOKED follows
// with its account_id. An Item with no account left is refused. e.mu is
// held.
func (e *Emulator) revokeAccount(it *item) *Error {
	accounts := itemAccounts(it)
	if len(accounts) == 0 {
		return sandboxErr("SANDBOX_ACCOUNT_INVALID", "the Item has no account left to revoke")
	}
	id := accounts[0].ID
	if perr := e.changeItem(it, func(it *item) {
		it.accountIDs = slices.DeleteFunc(it.accountIDs, func(a string) bool { return a == id })
		delete(it.verification, id)
	}); perr != nil {
		return perr
	}
	e.queueItemWebhook(it, "ITEM", "USER_ACCOUNT_REVOKED", map[string]any{"account_id": id})
	return nil
}

// sandboxItemSetVerificationStatus serves
// /sandbox/item/set_verification_status: an account pending automated
// micro-deposit verification becomes automatically_verified or
// verification_expired, and the AUTH webhook of that name is sent. Plaid
// refuses an Item without auth, an account not on the Item, and one not
// pending automatic verification.
func (e *Emulator) sandboxItemSetVerificationStatus(f *fields) (answer, *Error) {
	it, perr := e.itemFromRequest(f)
	if perr != nil {
		return nil, perr
	}
	accountID := f.str("account_id", true)
	status := f.str("verification_status", true)
	f.oneOf("verification_status", []string{VerificationAutomatic, VerificationExpired}, status)
	if err := f.err(); err != nil {
		return nil, err
	}
	switch {
	case !slices.Contains(it.products, "auth"):
		return nil, sandboxErr("SANDBOX_PRODUCT_NOT_ENABLED", "The auth product is not enabled on this item")
	case !slices.Contains(it.accountIDs, accountID):
		return nil, errInvalidAccountID()
	case it.verification[accountID] != VerificationPendingAutomatic:
		return nil, errInvalidField("account_id is not pending automatic micro-deposit verification; create the Item at %s with %s / %s", MicrodepositsInstitutionID, MicrodepositsUsername, MicrodepositsPassword)
	}
	if perr := e.changeItem(it, func(it *item) { it.verification[accountID] = status }); perr != nil {
		return nil, perr
	}
	code := "AUTOMATICALLY_VERIFIED"
	if status == VerificationExpired {
		code = "VERIFICATION_EXPIRED"
	}
	e.queueItemWebhook(it, "AUTH", code, map[string]any{"account_id": accountID})
	return object{}, nil
}

// itemWebhookUpdate serves /item/webhook/update: the Item's webhook becomes
// webhook (null removes it), and WEBHOOK_UPDATE_ACKNOWLEDGED goes to the
// new URL.
func (e *Emulator) itemWebhookUpdate(f *fields) (answer, *Error) {
	it, perr := e.itemFromRequest(f)
	if perr != nil {
		return nil, perr
	}
	webhook := f.str("webhook", false)
	f.url("webhook", webhook)
	if err := f.err(); err != nil {
		return nil, err
	}
	if perr := e.changeItem(it, func(it *item) { it.webhook = webhook }); perr != nil {
		return nil, perr
	}
	e.queueItemWebhook(it, "ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED", map[string]any{"new_webhook_url": webhook})
	return object{"item": itemJSON(it)}, nil
}

// UpdateItemWebhook is /item/webhook/update for Go tests: the Item of
// accessToken gets webhook url ("" removes it) and WEBHOOK_UPDATE_ACKNOWLEDGED
// goes to it, delivered before it returns. It returns an *Error:
// INVALID_ACCESS_TOKEN, ITEM_NOT_FOUND, or INVALID_FIELD for a URL that is
// not absolute.
func (e *Emulator) UpdateItemWebhook(accessToken, url string) error {
	body := map[string]any{"access_token": accessToken, "webhook": nil}
	if url != "" {
		body["webhook"] = url
	}
	if _, perr := e.call(e.itemWebhookUpdate, body); perr != nil {
		return perr
	}
	return nil
}
