package plaidemu

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/linkd/linkd/internal/fileutil"
)

// stateVersion is the version of the state file's format; Start refuses
// any other.
const stateVersion = 1

// stateFile is the emulator's durable state as stored at Options.StatePath:
// what a developer's Items need to keep working across restarts. Link
// tokens, public tokens and Link sessions are short-lived and stay in
// memory. The file holds access tokens; the emulator's tokens are fake and
// open nothing but its own sandbox data, but the file is written 0600 all
// the same, as linkd's master.key is.
type stateFile struct {
	Version    int         `json:"version"`
	WebhookKey stateKey    `json:"webhook_key"`
	Items      []stateItem `json:"items"`
}

// stateKey is the webhook signing key, so that webhooks signed before a
// restart still verify after it.
type stateKey struct {
	ID      string    `json:"kid"`
	PKCS8   []byte    `json:"pkcs8"` // base64 in JSON
	Created time.Time `json:"created_at"`
}

// stateItem is one Item, removed ones included so that their access tokens
// keep answering ITEM_NOT_FOUND rather than INVALID_ACCESS_TOKEN.
type stateItem struct {
	AccessToken   string    `json:"access_token"`
	ItemID        string    `json:"item_id"`
	InstitutionID string    `json:"institution_id"`
	AccountIDs    []string  `json:"account_ids"`
	Products      []string  `json:"products"`
	Webhook       string    `json:"webhook,omitempty"`
	Created       time.Time `json:"created_at"`
	Removed       bool      `json:"removed,omitempty"`
	LoginRequired bool      `json:"login_required,omitempty"`
	// ConsentExpires is consent_expiration_time; absent for none.
	ConsentExpires *time.Time `json:"consent_expiration_time,omitempty"`
	// AddedAccounts counts the accounts the bank opened since linking.
	AddedAccounts int `json:"added_accounts,omitempty"`
	// Verification is verification_status by account_id.
	Verification map[string]string `json:"verification_status,omitempty"`
}

// loadState reads the state file at e.statePath into e, or keeps e's fresh
// state when the file does not exist. It returns an error naming the file
// when it cannot be read or does not hold a state the emulator wrote.
func (e *Emulator) loadState() error {
	raw, err := os.ReadFile(e.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("plaidemu: reading the state file: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("plaidemu: state file %s is damaged (%s); move it aside to start with no Items", e.statePath, fmt.Sprintf(format, args...))
	}
	var s stateFile
	if err := json.Unmarshal(raw, &s); err != nil {
		return bad("%v", err)
	}
	if s.Version != stateVersion {
		return bad("version %d, want %d", s.Version, stateVersion)
	}
	key, err := x509.ParsePKCS8PrivateKey(s.WebhookKey.PKCS8)
	if err != nil {
		return bad("webhook_key: %v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve.Params().Name != "P-256" || s.WebhookKey.ID == "" {
		return bad("webhook_key is not a P-256 key with a kid")
	}
	items := make(map[string]*item, len(s.Items))
	for i, si := range s.Items {
		if si.AccessToken == "" || si.ItemID == "" {
			return bad("items[%d] has no access_token or item_id", i)
		}
		if _, dup := items[si.AccessToken]; dup {
			return bad("items[%d] repeats an access_token", i)
		}
		if _, ok := institution(si.InstitutionID); !ok {
			return bad("items[%d] has unknown institution_id %q", i, si.InstitutionID)
		}
		items[si.AccessToken] = &item{
			id:            si.ItemID,
			institutionID: si.InstitutionID,
			accountIDs:    si.AccountIDs,
			products:      si.Products,
			webhook:       si.Webhook,
			created:       si.Created,
			removed:       si.Removed,
			loginRequired: si.LoginRequired,
			addedAccounts: si.AddedAccounts,
			verification:  si.Verification,
		}
		if si.AddedAccounts < 0 {
			return bad("items[%d] has negative added_accounts", i)
		}
		if si.ConsentExpires != nil {
			items[si.AccessToken].consentExpires = *si.ConsentExpires
		}
	}
	e.webhookKey = &webhookKey{id: s.WebhookKey.ID, private: ec, created: s.WebhookKey.Created}
	e.items = items
	return nil
}

// saveState writes e's durable state to e.statePath, replacing the file
// atomically, when the emulator has one. e.mu is held (or e is not shared
// yet). It returns an error when the file cannot be written; the old file
// is then left as it was.
func (e *Emulator) saveState() error {
	if e.statePath == "" {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(e.webhookKey.private)
	if err != nil {
		return fmt.Errorf("plaidemu: encoding the webhook key: %w", err)
	}
	s := stateFile{
		Version:    stateVersion,
		WebhookKey: stateKey{ID: e.webhookKey.id, PKCS8: der, Created: e.webhookKey.created.UTC()},
		Items:      make([]stateItem, 0, len(e.items)),
	}
	for token, it := range e.items {
		si := stateItem{
			AccessToken: token, ItemID: it.id, InstitutionID: it.institutionID,
			AccountIDs: it.accountIDs, Products: it.products, Webhook: it.webhook,
			Created: it.created.UTC(), Removed: it.removed, LoginRequired: it.loginRequired,
			AddedAccounts: it.addedAccounts, Verification: it.verification,
		}
		if !it.consentExpires.IsZero() {
			t := it.consentExpires.UTC()
			si.ConsentExpires = &t
		}
		s.Items = append(s.Items, si)
	}
	slices.SortFunc(s.Items, func(a, b stateItem) int { return strings.Compare(a.ItemID, b.ItemID) })
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("plaidemu: encoding the state: %w", err)
	}
	if err := fileutil.Install(e.statePath, append(raw, '\n'), os.Rename); err != nil {
		return fmt.Errorf("plaidemu: writing the state file: %w", err)
	}
	return nil
}

// commitItems saves the state after a change to an Item, for the endpoints:
// nil when saved (or nothing to save), else an API_ERROR, logged in full.
// The caller undoes its change on failure, so that memory and file agree.
// e.mu is held.
func (e *Emulator) commitItems() *Error {
	if err := e.saveState(); err != nil {
		e.log.Error("plaidemu: saving the state", "path", e.statePath, "err", err)
		return plaidErr(TypeAPIError, "INTERNAL_SERVER_ERROR", "the emulator could not save its state file")
	}
	return nil
}
