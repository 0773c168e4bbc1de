package plaidemu

import (
	"bytes"
	"slices"
	"sync"
	"time"
)

// answer is an endpoint's response body, which ServeHTTP completes with
// the request's request_id before it encodes it.
type answer interface{ setRequestID(id string) }

// object is the answer of an endpoint without a type of its own: a JSON
// object, its keys in sorted order.
type object map[string]any

func (o object) setRequestID(id string) { o["request_id"] = id }

// The answers of the connected-link path are structs: encoding/json writes
// a struct from a cached plan, where a map costs reflection over its keys,
// a sort and an interface per value (over half of /accounts/get's time).
// Their fields are in the order encoding/json sorts the keys of the maps
// they replaced, so the bytes are the same (testdata/responses.golden).

// linkTokenAnswer is /link/token/create's answer.
type linkTokenAnswer struct {
	Expiration    string `json:"expiration"`
	HostedLinkURL string `json:"hosted_link_url,omitempty"`
	LinkToken     string `json:"link_token"`
	RequestID     string `json:"request_id"`
}

func (a *linkTokenAnswer) setRequestID(id string) { a.RequestID = id }

// publicTokenAnswer is /sandbox/public_token/create's answer.
type publicTokenAnswer struct {
	PublicToken string `json:"public_token"`
	RequestID   string `json:"request_id"`
}

func (a *publicTokenAnswer) setRequestID(id string) { a.RequestID = id }

// exchangeAnswer is /item/public_token/exchange's answer.
type exchangeAnswer struct {
	AccessToken string `json:"access_token"`
	ItemID      string `json:"item_id"`
	RequestID   string `json:"request_id"`
}

func (a *exchangeAnswer) setRequestID(id string) { a.RequestID = id }

// accountsAnswer is /accounts/get's answer.
type accountsAnswer struct {
	Accounts  []accountObject `json:"accounts"`
	Item      itemObject      `json:"item"`
	RequestID string          `json:"request_id"`
}

func (a *accountsAnswer) setRequestID(id string) { a.RequestID = id }

// itemObject is Plaid's Item object. Nil pointers are Plaid's nulls.
type itemObject struct {
	AvailableProducts     []string   `json:"available_products"`
	BilledProducts        []string   `json:"billed_products"`
	ConsentExpirationTime *string    `json:"consent_expiration_time"`
	ConsentedProducts     []string   `json:"consented_products"`
	CreatedAt             string     `json:"created_at"`
	Error                 *errorBody `json:"error"`
	InstitutionID         string     `json:"institution_id"`
	InstitutionName       string     `json:"institution_name"`
	ItemID                string     `json:"item_id"`
	Products              []string   `json:"products"`
	UpdateType            string     `json:"update_type"`
	Webhook               *string    `json:"webhook"`
}

// accountObject is Plaid's account object with balances, and its
// verification_status when it has one.
type accountObject struct {
	AccountID          string         `json:"account_id"`
	Balances           balancesObject `json:"balances"`
	Mask               string         `json:"mask"`
	Name               string         `json:"name"`
	OfficialName       string         `json:"official_name"`
	Subtype            string         `json:"subtype"`
	Type               string         `json:"type"`
	VerificationStatus string         `json:"verification_status,omitempty"`
}

// balancesObject is an account's balances; nil is null.
type balancesObject struct {
	Available              *float64 `json:"available"`
	Current                *float64 `json:"current"`
	ISOCurrencyCode        string   `json:"iso_currency_code"`
	Limit                  *float64 `json:"limit"`
	UnofficialCurrencyCode *string  `json:"unofficial_currency_code"`
}

// itemProducts are the products an Item's available_products are drawn
// from, in Plaid's order.
var itemProducts = []string{"assets", "auth", "balance", "identity", "investments", "liabilities", "transactions"}

// itemJSON is Plaid's Item object for it.
func itemJSON(it *item) itemObject {
	out := itemObject{
		CreatedAt:     it.created.UTC().Format(time.RFC3339),
		InstitutionID: it.institutionID,
		ItemID:        it.id,
		UpdateType:    "background",
	}
	if ins, ok := sharedInstitution(it.institutionID); ok {
		out.InstitutionName = ins.Name
	}
	if it.webhook != "" {
		// A copy: the answer is encoded after e.mu is released, and
		// /item/webhook/update may change it.webhook meanwhile.
		w := it.webhook
		out.Webhook = &w
	}
	// Plaid's /item/get shows an Item's error: how a missed ERROR webhook
	// is caught.
	if it.loginRequired {
		body := errItemLoginRequired().body(newRequestID())
		out.Error = &body
	}
	if !it.consentExpires.IsZero() {
		at := it.consentExpires.UTC().Format(time.RFC3339)
		out.ConsentExpirationTime = &at
	}
	// One copy, never nil (an empty list is [], not null), shared by the
	// three fields that list the Item's products.
	products := append(make([]string, 0, len(it.products)), it.products...)
	out.BilledProducts, out.Products, out.ConsentedProducts = products, products, products
	out.AvailableProducts = make([]string, 0, len(itemProducts))
	for _, p := range itemProducts {
		if !slices.Contains(products, p) {
			out.AvailableProducts = append(out.AvailableProducts, p)
		}
	}
	return out
}

// accountJSON is Plaid's account object for a, with its verification
// status ("" for none).
func accountJSON(a *Account, verification string) accountObject {
	return accountObject{
		AccountID: a.ID,
		Balances: balancesObject{
			Available:       a.Available,
			Current:         a.Current,
			ISOCurrencyCode: a.Currency,
			Limit:           a.Limit,
		},
		Mask:               a.Mask,
		Name:               a.Name,
		OfficialName:       a.OfficialName,
		Subtype:            a.Subtype,
		Type:               a.Type,
		VerificationStatus: verification,
	}
}

// buffers holds the buffers requests are read into and answers encoded in.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest buffer put back in buffers: a rare big
// body is left to the collector rather than kept for every request.
const maxPooledBuffer = 64 << 10

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		b.Reset()
		buffers.Put(b)
	}
}
