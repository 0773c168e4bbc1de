package plaidemu

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// linkTokenCreate serves /link/token/create. With access_token it makes an
// update-mode token for that Item: no products needed, 30 minutes of life.
func (e *Emulator) linkTokenCreate(f *fields) (answer, *Error) {
	clientName := f.str("client_name", true)
	language := f.str("language", true)
	countries := f.strs("country_codes", true)
	clientUserID := f.str("user.client_user_id", true)
	accessToken := f.str("access_token", false)
	products := f.strs("products", accessToken == "")
	webhook := f.str("webhook", false)
	redirectURI := f.str("redirect_uri", false)
	androidPackageName := f.str("android_package_name", false)
	hosted, completionRedirectURI, hostedLifetime := checkLinkTokenOptions(f, products, accessToken != "")
	if hosted && androidPackageName != "" {
		f.fail("android_package_name cannot be used with hosted_link")
	}
	f.oneOf("language", knownLanguages, language)
	f.oneOf("country_codes", knownCountryCodes, countries...)
	f.oneOf("products", knownProducts, products...)
	f.url("webhook", webhook)
	f.url("redirect_uri", redirectURI)
	if err := f.err(); err != nil {
		return nil, err
	}

	accountSelection := f.boolean("update.account_selection_enabled")
	lifetime := LinkTokenLifetime
	if accessToken != "" {
		it, err := e.item(accessToken)
		if err != nil {
			return nil, err
		}
		lifetime = UpdateLinkTokenLifetime
		products = it.products
	}
	if hostedLifetime > 0 {
		lifetime = hostedLifetime
	}
	token, expires := newLinkToken(), e.now().Add(lifetime)
	e.linkTokens[token] = &linkToken{
		clientUserID:          clientUserID,
		clientName:            clientName,
		products:              products,
		webhook:               webhook,
		redirectURI:           redirectURI,
		accessToken:           accessToken,
		accountSelection:      accountSelection,
		expires:               expires,
		created:               e.now(),
		countryCodes:          countries,
		language:              language,
		hosted:                hosted,
		completionRedirectURI: completionRedirectURI,
	}
	resp := &linkTokenAnswer{LinkToken: token, Expiration: expires.UTC().Format(time.RFC3339)}
	if hosted {
		resp.HostedLinkURL = e.hostedLinkURL(token)
	}
	return resp, nil
}

// sandboxPublicTokenCreate serves /sandbox/public_token/create: a public
// token for an Item with all the institution's accounts, as if the user had
// gone through Link.
func (e *Emulator) sandboxPublicTokenCreate(f *fields) (answer, *Error) {
	institutionID := f.str("institution_id", true)
	products := f.strs("initial_products", true)
	webhook := f.str("options.webhook", false)
	username := f.str("options.override_username", false)
	password := f.str("options.override_password", false)
	f.oneOf("initial_products", knownProducts, products...)
	f.url("options.webhook", webhook)
	if err := f.err(); err != nil {
		return nil, err
	}
	ins, ok := sharedInstitution(institutionID)
	if !ok {
		return nil, errInvalidInstitution()
	}
	pt := &publicToken{
		institutionID: ins.ID,
		accountIDs:    idsOf(ins.Accounts),
		products:      products,
		webhook:       webhook,
	}
	switch {
	case (username == "" || username == "user_good") && (password == "" || password == "pass_good"):
	case username == MicrodepositsUsername && password == MicrodepositsPassword && ins.ID == MicrodepositsInstitutionID:
		// Automated micro-deposits: one account, pending verification.
		if !slices.Contains(products, "auth") {
			return nil, errInvalidField("options.override_password %s needs auth in initial_products", MicrodepositsPassword)
		}
		for _, a := range ins.Accounts {
			if a.Mask == microdepositsMask {
				pt.accountIDs = []string{a.ID}
				pt.verification = map[string]string{a.ID: VerificationPendingAutomatic}
			}
		}
	default:
		return nil, errInvalidCredentials()
	}
	return &publicTokenAnswer{PublicToken: e.issuePublicToken(pt)}, nil
}

// publicTokenExchange serves /item/public_token/exchange. A public token
// works once, within PublicTokenLifetime.
func (e *Emulator) publicTokenExchange(f *fields) (answer, *Error) {
	token := f.str("public_token", true)
	if err := f.err(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(token, "public-") {
		return nil, errInvalidPublicToken("is in an invalid format; expected public-<environment>-<identifier>")
	}
	pt, ok := e.publicTokens[token]
	switch {
	case !ok:
		return nil, errInvalidPublicToken("was not found; it may belong to another environment")
	case pt.spent:
		return nil, errInvalidPublicToken("has already been exchanged; public tokens are single-use")
	case !e.now().Before(pt.expires):
		return nil, errInvalidPublicToken("has expired; public tokens expire 30 minutes after they are created")
	}

	if pt.accessToken != "" { // update mode: the Item exists already
		it, err := e.item(pt.accessToken)
		if err != nil {
			return nil, err
		}
		pt.spent = true
		return &exchangeAnswer{AccessToken: pt.accessToken, ItemID: it.id}, nil
	}
	pt.spent = true
	accessToken := newAccessToken()
	it := &item{
		accessToken:   accessToken,
		id:            newItemID(),
		institutionID: pt.institutionID,
		accountIDs:    pt.accountIDs,
		products:      pt.products,
		webhook:       pt.webhook,
		created:       e.now(),
		verification:  maps.Clone(pt.verification),
	}
	e.items[accessToken] = it
	if perr := e.commitItems(accessToken); perr != nil {
		delete(e.items, accessToken)
		pt.spent = false
		return nil, perr
	}
	return &exchangeAnswer{AccessToken: accessToken, ItemID: it.id}, nil
}

// sandboxItemResetLogin serves /sandbox/item/reset_login: the Item needs
// its user again, until a Link session in update mode for it finishes.
func (e *Emulator) sandboxItemResetLogin(f *fields) (answer, *Error) {
	it, err := e.itemFromRequest(f)
	if err != nil {
		return nil, err
	}
	was := it.loginRequired
	it.loginRequired = true
	if perr := e.commitItems(f.str("access_token", true)); perr != nil {
		it.loginRequired = was
		return nil, perr
	}
	e.queueItemWebhook(it, "ITEM", "ERROR", errorWebhookFields(errItemLoginRequired()))
	return object{"reset_login": true}, nil
}

// itemGet serves /item/get.
func (e *Emulator) itemGet(f *fields) (answer, *Error) {
	it, err := e.itemFromRequest(f)
	if err != nil {
		return nil, err
	}
	return object{"item": itemJSON(it), "status": nil}, nil
}

// itemRemove serves /item/remove. The access token stops working: later
// calls get ITEM_NOT_FOUND.
func (e *Emulator) itemRemove(f *fields) (answer, *Error) {
	it, err := e.itemFromRequest(f)
	if err != nil {
		return nil, err
	}
	it.removed = true
	if perr := e.commitItems(f.str("access_token", true)); perr != nil {
		it.removed = false
		return nil, perr
	}
	return object{}, nil
}

// accountsGet serves /accounts/get, honouring options.account_ids. An Item
// whose login was reset answers ITEM_LOGIN_REQUIRED.
func (e *Emulator) accountsGet(f *fields) (answer, *Error) {
	it, err := e.itemFromRequest(f)
	if err != nil {
		return nil, err
	}
	if it.loginRequired {
		return nil, errItemLoginRequired()
	}
	only := f.strs("options.account_ids", false)
	if err := f.err(); err != nil {
		return nil, err
	}
	for _, id := range only {
		if !slices.Contains(it.accountIDs, id) {
			return nil, errInvalidAccountID()
		}
	}
	held := itemAccounts(it)
	accounts := make([]accountObject, 0, len(held)) // [] when none, not null
	for i := range held {
		if a := &held[i]; len(only) == 0 || slices.Contains(only, a.ID) {
			accounts = append(accounts, accountJSON(a, it.verification[a.ID]))
		}
	}
	return &accountsAnswer{Accounts: accounts, Item: itemJSON(it)}, nil
}

// CreatePublicToken issues a public token as Link does when a user finishes
// a session opened with linkToken: for an Item at institutionID holding the
// accounts accountIDs (ids from Institutions(), or LinkTokenInfo's
// Accounts in update mode; none means all, or the Item's own in update
// mode without account selection). A public token from an update-mode link
// token exchanges for the existing Item, which the finished session has
// repaired as Plaid's update mode does: login fixed, consent renewed,
// with account selection the picked accounts. No webhook follows. It
// returns an *Error: INVALID_LINK_TOKEN for an unknown or expired link
// token, INVALID_INSTITUTION, INVALID_ACCOUNT_ID, or ITEM_NOT_FOUND when
// the Item of an update-mode token was removed.
func (e *Emulator) CreatePublicToken(linkToken, institutionID string, accountIDs []string) (string, error) {
	e.mu.Lock()
	token, err := e.createPublicToken(linkToken, institutionID, accountIDs)
	hooks := e.takeOutbox()
	e.mu.Unlock()
	e.deliver(hooks)
	if err != nil { // not a nil *Error in a non-nil error
		return "", err
	}
	return token, nil
}

// createPublicToken is CreatePublicToken with e.mu held.
func (e *Emulator) createPublicToken(linkToken, institutionID string, accountIDs []string) (string, *Error) {
	lt, ok := e.linkTokens[linkToken]
	if !ok {
		return "", errInvalidLinkToken("was not found")
	}
	if !e.now().Before(lt.expires) {
		return "", errInvalidLinkToken("has expired")
	}
	ins, ok := institution(institutionID)
	if !ok {
		return "", errInvalidInstitution()
	}
	var it *item
	if lt.accessToken != "" {
		var err *Error
		if it, err = e.item(lt.accessToken); err != nil {
			return "", err
		}
		if it.institutionID != institutionID {
			return "", errInvalidInstitution()
		}
	}
	all := idsOf(e.availableAccounts(ins, lt.accessToken))
	for _, id := range accountIDs {
		if !slices.Contains(all, id) {
			return "", errInvalidAccountID()
		}
	}
	switch {
	case len(accountIDs) > 0:
	case it != nil && !lt.accountSelection:
		accountIDs = it.accountIDs
	default:
		accountIDs = all
	}
	if it != nil {
		if err := e.finishUpdateMode(it, lt, accountIDs); err != nil {
			return "", err
		}
	}
	return e.issuePublicToken(&publicToken{
		institutionID: ins.ID,
		accountIDs:    slices.Clone(accountIDs),
		products:      lt.products,
		webhook:       lt.webhook,
		accessToken:   lt.accessToken,
	}), nil
}

// issuePublicToken stores pt with a fresh token and expiry. e.mu is held.
func (e *Emulator) issuePublicToken(pt *publicToken) string {
	token := newPublicToken()
	pt.expires = e.now().Add(PublicTokenLifetime)
	e.publicTokens[token] = pt
	return token
}

// itemFromRequest finds the Item of the request's access_token.
func (e *Emulator) itemFromRequest(f *fields) (*item, *Error) {
	token := f.str("access_token", true)
	if err := f.err(); err != nil {
		return nil, err
	}
	return e.item(token)
}

// item finds a live Item by access token: INVALID_ACCESS_TOKEN when unknown,
// ITEM_NOT_FOUND when removed. e.mu is held.
func (e *Emulator) item(accessToken string) (*item, *Error) {
	it, ok := e.items[accessToken]
	switch {
	case !ok:
		return nil, errInvalidAccessToken()
	case it.removed:
		return nil, errItemNotFound()
	}
	return it, nil
}

func idsOf(accounts []Account) []string {
	ids := make([]string, len(accounts))
	for i, a := range accounts {
		ids[i] = a.ID
	}
	return ids
}
