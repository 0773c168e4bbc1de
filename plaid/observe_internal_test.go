package plaid

import (
	"encoding/json"
	"testing"
)

// plaidFieldsCases are Plaid answers and the bodies around their edges.
var plaidFieldsCases = []struct {
	name, body         string
	requestID, errCode string
}{
	{"success", `{"access_token":"access-sandbox-1","item_id":"it","request_id":"REQ1"}`, "REQ1", ""},
	{"error", `{"display_message":null,"error_code":"INVALID_PUBLIC_TOKEN","error_message":"bad","error_type":"INVALID_INPUT","request_id":"REQ2"}`, "REQ2", "INVALID_PUBLIC_TOKEN"},
	{"nested keys are not top-level", `{"item":{"request_id":"inner","error_code":"X"},"accounts":[{"error_code":"Y"}],"request_id":"outer"}`, "outer", ""},
	{"whitespace", " \t\r\n{ \"request_id\" : \"R\" , \"error_code\" :\"E\" }\n", "R", "E"},
	{"keys fold case", `{"Request_ID":"R","ERROR_CODE":"E"}`, "R", "E"},
	{"keys fold as Unicode does", "{\"reque\u017ft_id\":\"R\"}", "R", ""},
	{"last repeated key wins", `{"request_id":"a","request_id":"b"}`, "b", ""},
	{"null leaves the field", `{"request_id":"a","request_id":null}`, "a", ""},
	{"another type leaves the field", `{"request_id":"a","request_id":7,"error_code":{"x":[1,2]}}`, "a", ""},
	{"escapes", `{"request_id":"a\"b\\c\u00e9\/"}`, "a\"b\\cé/", ""},
	{"escaped key", `{"request\u005fid":"R"}`, "R", ""},
	{"invalid UTF-8 is replaced", "{\"request_id\":\"a\xffb\"}", "a\uFFFDb", ""},
	{"numbers and literals", `{"a":-0.5e+10,"b":[true,false,null,0,12,1E3],"request_id":"R"}`, "R", ""},
	{"empty object", `{}`, "", ""},
	{"not an object", `["request_id","R"]`, "", ""},
	{"not JSON", `<html>Bad Gateway</html>`, "", ""},
	{"empty", ``, "", ""},
	{"truncated", `{"request_id":"R","error_code":"E"`, "", ""},
	{"trailing garbage", `{"request_id":"R"}x`, "", ""},
	{"bad number", `{"request_id":"R","n":01}`, "", ""},
	{"bad escape", `{"request_id":"R\x"}`, "", ""},
	{"control character in a string", "{\"request_id\":\"R\n\"}", "", ""},
	{"bad literal", `{"request_id":"R","ok":tru}`, "", ""},
	{"trailing comma", `{"request_id":"R",}`, "", ""},
}

// TestPlaidFields: plaidFields reads what encoding/json reads into a
// struct of the two fields, for Plaid's answers and for malformed bodies.
func TestPlaidFields(t *testing.T) {
	for _, tc := range plaidFieldsCases {
		t.Run(tc.name, func(t *testing.T) {
			id, code := plaidFields([]byte(tc.body))
			if id != tc.requestID || code != tc.errCode {
				t.Errorf("plaidFields(%q) = %q, %q; want %q, %q", tc.body, id, code, tc.requestID, tc.errCode)
			}
			wantID, wantCode := decodePlaidFields([]byte(tc.body))
			if id != wantID || code != wantCode {
				t.Errorf("plaidFields(%q) = %q, %q; encoding/json reads %q, %q", tc.body, id, code, wantID, wantCode)
			}
		})
	}
}

// FuzzPlaidFields holds plaidFields to encoding/json on any body.
func FuzzPlaidFields(f *testing.F) {
	for _, tc := range plaidFieldsCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, code := plaidFields(body)
		wantID, wantCode := decodePlaidFields(body)
		if id != wantID || code != wantCode {
			t.Errorf("plaidFields(%q) = %q, %q; encoding/json reads %q, %q", body, id, code, wantID, wantCode)
		}
	})
}

// decodePlaidFields is what observeTransport read before plaidFields.
func decodePlaidFields(body []byte) (string, string) {
	var fields struct {
		RequestID string `json:"request_id"`
		ErrorCode string `json:"error_code"`
	}
	json.Unmarshal(body, &fields)
	return fields.RequestID, fields.ErrorCode
}

// BenchmarkPlaidFields reads an /accounts/get answer's request_id.
func BenchmarkPlaidFields(b *testing.B) {
	body := []byte(`{"accounts":[` + accountJSON + `,` + accountJSON + `,` + accountJSON + `],"item":{"available_products":["balance","identity"],"billed_products":["auth","transactions"],"consent_expiration_time":null,"error":null,"institution_id":"ins_109508","item_id":"eVBnVMp7zdTJLkRNr33Rs6zr7KNJqBFL9DrE6","update_type":"background","webhook":"https://www.genericwebhookurl.com/webhook"},"request_id":"bkVE1BHWMAZ9Rnr"}`)
	b.Run("plaidFields", func(b *testing.B) {
		for b.Loop() {
			plaidFields(body)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			decodePlaidFields(body)
		}
	})
}

const accountJSON = `{"account_id":"BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp","balances":{"available":100,"current":110,"iso_currency_code":"USD","limit":null,"unofficial_currency_code":null},"mask":"0000","name":"Plaid Checking","official_name":"Plaid Gold Standard 0% Interest Checking","subtype":"checking","type":"depository"}`
