package plaidemu

import (
	"slices"
	"time"
)

// LinkTokenInfo is what the emulator knows of a link token: what a Link
// page needs to run a session with it.
type LinkTokenInfo struct {
	// ClientUserID is user.client_user_id.
	ClientUserID string
	// ClientName is the app name Link shows.
	ClientName string
	// Products are the token's products (an update-mode token's are its
	// Item's).
	Products []string
	// Webhook and RedirectURI are as given to /link/token/create; "" when
	// not given.
	Webhook     string
	RedirectURI string
	// Expiration is when the token stops working.
	Expiration time.Time
	// UpdateMode is true for a token created with an access_token: Link
	// skips institution select and relinks that Item.
	UpdateMode bool
	// InstitutionID is the institution of the update-mode Item; "" otherwise.
	InstitutionID string
	// AccountIDs are the update-mode Item's accounts; nil otherwise.
	AccountIDs []string
	// AccountSelection is update.account_selection_enabled: the update-mode
	// session lets the user pick the Item's accounts anew from Accounts.
	AccountSelection bool
	// Accounts are the accounts an update-mode session may show: the
	// institution's and those the bank added to the Item since it was
	// linked (NEW_ACCOUNTS_AVAILABLE); nil otherwise.
	Accounts []Account
	// Hosted is true for a Hosted Link token: its page has no webview
	// delegate and goes to CompletionRedirectURI when the session ends.
	Hosted                bool
	CompletionRedirectURI string
}

// LinkTokenInfo returns what the emulator knows of linkToken. It returns an
// *Error: INVALID_LINK_TOKEN for an unknown or expired token, or
// ITEM_NOT_FOUND when the Item of an update-mode token was removed.
func (e *Emulator) LinkTokenInfo(linkToken string) (LinkTokenInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	lt, ok := e.linkTokens[linkToken]
	if !ok {
		return LinkTokenInfo{}, errInvalidLinkToken("was not found")
	}
	if !e.now().Before(lt.expires) {
		return LinkTokenInfo{}, errInvalidLinkToken("has expired")
	}
	info := LinkTokenInfo{
		ClientUserID: lt.clientUserID,
		ClientName:   lt.clientName,
		Products:     slices.Clone(lt.products),
		Webhook:      lt.webhook,
		RedirectURI:  lt.redirectURI,
		Expiration:   lt.expires,
		UpdateMode:   lt.accessToken != "",
		Hosted:       lt.hosted,

		CompletionRedirectURI: lt.completionRedirectURI,
	}
	if info.UpdateMode {
		it, err := e.item(lt.accessToken)
		if err != nil {
			return LinkTokenInfo{}, err
		}
		info.InstitutionID = it.institutionID
		info.AccountIDs = slices.Clone(it.accountIDs)
		info.AccountSelection = lt.accountSelection
		ins, _ := institution(it.institutionID)
		info.Accounts = slices.Clone(e.availableAccounts(ins, lt.accessToken))
	}
	return info, nil
}

// ExpireLinkToken makes linkToken expire now, as if its lifetime had passed,
// so that a Link page or test can see Plaid's INVALID_LINK_TOKEN. It returns
// an *Error (INVALID_LINK_TOKEN) for an unknown token.
func (e *Emulator) ExpireLinkToken(linkToken string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	lt, ok := e.linkTokens[linkToken]
	if !ok {
		return errInvalidLinkToken("was not found")
	}
	lt.expires = e.now()
	return nil
}
