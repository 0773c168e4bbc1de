package plaidemu

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestAppendStateItem: the hand-written state record is byte for byte what
// encoding/json writes for it, or is left to encoding/json.
func TestAppendStateItem(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	consent := created.Add(7 * 24 * time.Hour)
	base := func() stateItem {
		return stateItem{
			AccessToken: "access-sandbox-6f0c4b8e-1d2a-4f5b-9c3d-7e8f9a0b1c2d", ItemID: "ZxY9wV8uT7sR6qP5oN4mL3kJ2iH1gF0eD9cBa",
			InstitutionID: "ins_109508", AccountIDs: []string{"a1", "b2"}, Products: []string{"auth", "transactions"}, Created: created,
		}
	}
	for _, tt := range []struct {
		name   string
		change func(*stateItem)
		byHand bool // written without encoding/json
	}{
		{"Plain", func(*stateItem) {}, true},
		{"Webhook", func(si *stateItem) { si.Webhook = "https://hooks.example.com/plaid?x=1" }, true},
		{"WebhookAmpersand", func(si *stateItem) { si.Webhook = "https://hooks.example.com/plaid?x=1&y=2" }, false},
		{"NilLists", func(si *stateItem) { si.AccountIDs, si.Products = nil, nil }, true},
		{"EmptyLists", func(si *stateItem) { si.AccountIDs, si.Products = []string{}, []string{} }, true},
		{"Flags", func(si *stateItem) { si.Removed, si.LoginRequired, si.AddedAccounts = true, true, 3 }, true},
		{"Consent", func(si *stateItem) { si.ConsentExpires = &consent }, true},
		{"WholeSecond", func(si *stateItem) { si.Created = created.Truncate(time.Second) }, true},
		{"Zone", func(si *stateItem) { si.Created = created.In(time.FixedZone("x", 3600)) }, true},
		{"Verification", func(si *stateItem) { si.Verification = map[string]string{"a1": "pending_automatic_verification"} }, false},
		{"Quote", func(si *stateItem) { si.ItemID = `a"b` }, false},
		{"Backslash", func(si *stateItem) { si.AccountIDs = []string{`a\b`} }, false},
		{"Control", func(si *stateItem) { si.Products = []string{"a\nb"} }, false},
		{"HTML", func(si *stateItem) { si.InstitutionID = "<ins>" }, false},
		{"NonASCII", func(si *stateItem) { si.AccessToken = "access-é" }, false},
		{"Year10000", func(si *stateItem) { si.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			si := base()
			tt.change(&si)
			want, err := json.Marshal(si)
			if err != nil {
				want = nil // encoding/json refuses it; so must appendRecord
			} else {
				want = append(want, '\n')
			}
			got, byHand := appendStateItem(nil, &si)
			if byHand != tt.byHand {
				t.Fatalf("written by hand = %v, want %v", byHand, tt.byHand)
			}
			if byHand && !bytes.Equal(got, want) {
				t.Fatalf("record\n%s\nwant what encoding/json writes\n%s", got, want)
			}
		})
	}
}
