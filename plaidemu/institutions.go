package plaidemu

import (
	"crypto/sha256"
	"math/big"
	"slices"
	"sync"
)

// Institution is a sandbox institution the emulator knows, with the accounts
// every Item at it gets (Plaid's sandbox user_good sees the same set).
type Institution struct {
	// ID is Plaid's institution_id, such as "ins_109508".
	ID string
	// Name is the institution's display name.
	Name string
	// OAuth is true when Link sends the user to the bank's own site (an
	// OAuth redirect) rather than asking for credentials in Link.
	OAuth bool
	// OAuthPopup is true for an OAuth institution whose site Link opens in
	// a new window (window.open) instead of in its own, as Plaid's Link
	// does for Chase: a webview app must handle the popup (WKUIDelegate
	// createWebViewWith, WebChromeClient onCreateWindow) or the user never
	// reaches the bank.
	OAuthPopup bool
	// Accounts are the accounts an Item at this institution holds.
	Accounts []Account
}

// Account is a sandbox account as /accounts/get returns it.
type Account struct {
	// ID is the account_id. Unlike Plaid, where each Item gets fresh
	// account_ids, the emulator derives it from the institution and the mask
	// so a Link page can show it before the Item exists; two Items at one
	// institution therefore share account_ids.
	ID           string
	Name         string
	OfficialName string
	// Mask is the last digits of the account number.
	Mask    string
	Type    string
	Subtype string
	// Available, Current and Limit are the balances; nil is sent as null.
	Available *float64
	Current   *float64
	Limit     *float64
	// Currency is the ISO-4217 code of the balances.
	Currency string
}

// Institutions returns the sandbox institutions the emulator serves: First
// Platypus Bank, Tartan Bank, Houndstooth Bank, Platypus OAuth Bank and
// Chase (an OAuth bank Link opens in a popup), with Plaid's sandbox ids. The
// slice is a fresh copy on each call, so changing it changes nothing in any
// Emulator. It cannot fail.
func Institutions() []Institution {
	out := make([]Institution, len(sandboxInstitutions()))
	for i, ins := range sandboxInstitutions() {
		out[i] = ins.clone()
	}
	return out
}

// sandboxInstitutions builds the institutions once: their account ids
// are derived by hashing, which cost ~10% of the emulator's CPU when every
// request rebuilt them. Never changed after it returns; hand out clones.
var sandboxInstitutions = sync.OnceValue(func() []Institution {
	return []Institution{
		{ID: "ins_109508", Name: "First Platypus Bank", Accounts: standardAccounts("ins_109508")},
		{ID: "ins_109511", Name: "Tartan Bank", Accounts: standardAccounts("ins_109511")},
		{ID: "ins_109512", Name: "Houndstooth Bank", Accounts: standardAccounts("ins_109512")},
		{ID: "ins_127287", Name: "Platypus OAuth Bank", OAuth: true, Accounts: standardAccounts("ins_127287")},
		{ID: "ins_56", Name: "Chase", OAuth: true, OAuthPopup: true, Accounts: standardAccounts("ins_56")},
	}
})

// clone copies ins down to its accounts' balances.
func (ins Institution) clone() Institution {
	ins.Accounts = slices.Clone(ins.Accounts)
	for i := range ins.Accounts {
		a := &ins.Accounts[i]
		a.Available, a.Current, a.Limit = cloneBalance(a.Available), cloneBalance(a.Current), cloneBalance(a.Limit)
	}
	return ins
}

func cloneBalance(v *float64) *float64 {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}

// institution returns a copy of the institution with the given id, which
// the caller may change.
func institution(id string) (Institution, bool) {
	if ins, ok := sharedInstitution(id); ok {
		return ins.clone(), true
	}
	return Institution{}, false
}

// sharedInstitution returns the institution with the given id itself, not
// a copy: for reading only, without the copy's allocations on every
// request.
func sharedInstitution(id string) (*Institution, bool) {
	all := sandboxInstitutions()
	for i := range all {
		if all[i].ID == id {
			return &all[i], true
		}
	}
	return nil, false
}

// standardAccounts returns the accounts of Plaid's sandbox user_good.
func standardAccounts(institutionID string) []Account {
	f := func(v float64) *float64 { return &v }
	accounts := []Account{
		{Name: "Plaid Checking", OfficialName: "Plaid Gold Standard 0% Interest Checking", Mask: "0000",
			Type: "depository", Subtype: "checking", Available: f(100), Current: f(110)},
		{Name: "Plaid Saving", OfficialName: "Plaid Silver Standard 0.1% Interest Saving", Mask: "1111",
			Type: "depository", Subtype: "savings", Available: f(200), Current: f(210)},
		{Name: "Plaid CD", OfficialName: "Plaid Bronze Standard 0.2% Interest CD", Mask: "2222",
			Type: "depository", Subtype: "cd", Current: f(1000)},
		{Name: "Plaid Credit Card", OfficialName: "Plaid Diamond 12.5% APR Interest Credit Card", Mask: "3333",
			Type: "credit", Subtype: "credit card", Current: f(410), Limit: f(2000)},
		{Name: "Plaid Money Market", OfficialName: "Plaid Platinum Standard 1.85% Interest Money Market", Mask: "4444",
			Type: "depository", Subtype: "money market", Available: f(43200), Current: f(43200)},
	}
	for i := range accounts {
		accounts[i].ID = stableID(institutionID + "/" + accounts[i].Mask)
		accounts[i].Currency = "USD"
	}
	return accounts
}

// stableID derives a 37-character base62 id, shaped like Plaid's, from seed.
func stableID(seed string) string {
	sum := sha256.Sum256([]byte("plaidemu account " + seed))
	n := new(big.Int).SetBytes(sum[:])
	b := make([]byte, idLength)
	base := big.NewInt(int64(len(base62)))
	mod := new(big.Int)
	for i := range b {
		n.DivMod(n, base, mod)
		b[i] = base62[mod.Int64()]
	}
	return string(b)
}
