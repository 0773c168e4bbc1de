package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

const (
	exchangePath = "/item/public_token/exchange"
	removePath   = "/item/remove"
)

// transports runs fn once over gRPC and once over REST, each against its
// own linkd.
func transports(t *testing.T, fn func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient)) {
	t.Run("gRPC", func(t *testing.T) {
		ts := MustStartServer(t)
		fn(t, ts, ts.GRPC(t))
	})
	t.Run("REST", func(t *testing.T) {
		ts := MustStartServer(t)
		fn(t, ts, ts.REST())
	})
}

// connectedURL builds the connected redirect Link fires, with the accounts
// JSON wrapped in single quotes as Plaid's own example is.
func connectedURL(publicToken, sessionID string) string {
	accounts := `'[{"_id":"acc-1","meta":{"name":"Plaid Checking","number":"0000"},"type":"depository","subtype":"checking"}]'`
	return "plaidlink://connected?public_token=" + url.QueryEscape(publicToken) +
		"&institution_id=ins_109508&institution_name=First+Platypus+Bank" +
		"&accounts=" + url.QueryEscape(accounts) +
		"&link_session_id=" + sessionID
}

// eventURL builds an event redirect with every key present, as Link sends it.
func eventURL(name, view, sessionID string, at time.Time) string {
	return "plaidlink://event?event_name=" + name + "&error_type&error_code&error_message&exit_status" +
		"&institution_id=ins_109508&institution_name=First%20Platypus%20Bank&institution_search_query" +
		"&mfa_type&view_name=" + view + "&request_id&link_session_id=" + sessionID +
		"&timestamp=" + url.QueryEscape(at.UTC().Format("2006-01-02T15:04:05.000Z"))
}

// mustLink creates a link token for user and a sandbox public token.
func mustLink(t testing.TB, c linkdv1.LinkServiceClient, user string) (*linkdv1.LinkToken, string) {
	t.Helper()
	ctx := context.Background()
	tok, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
	if err != nil {
		t.Fatalf("CreateLinkToken: %v", err)
	}
	pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508", InitialProducts: []string{"transactions"}})
	if err != nil {
		t.Fatalf("CreateSandboxPublicToken: %v", err)
	}
	return tok.GetLinkToken(), pt.GetPublicToken()
}

func TestLinkd_LinkFlow(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		start := time.Now()
		tok, publicToken := mustLink(t, c, "user-1")

		if !strings.HasPrefix(tok.GetLinkToken(), "link-sandbox-") {
			t.Errorf("link_token = %q, want link-sandbox-...", tok.GetLinkToken())
		}
		if want := "http://" + ts.HTTPAddr() + "/link/v2/stable/link.html?isWebview=true&token=" + url.QueryEscape(tok.GetLinkToken()); tok.GetWebviewUrl() != want {
			t.Errorf("webview_url = %q, want %q", tok.GetWebviewUrl(), want)
		}
		if exp := tok.GetExpiration().AsTime(); exp.Before(start.Add(3*time.Hour)) || exp.After(start.Add(5*time.Hour)) {
			t.Errorf("expiration = %v, want about 4 hours from now", exp)
		}
		if tok.GetRequestId() == "" || tok.GetClientUserId() != "user-1" {
			t.Errorf("request_id %q, client_user_id %q", tok.GetRequestId(), tok.GetClientUserId())
		}

		// Events arrive out of order; the session keeps them by timestamp.
		session := "79e772be-547d-4c9c-8b76-4ac4ed4c441a"
		t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
		for _, u := range []string{
			eventURL("HANDOFF", "", session, t0.Add(3*time.Second)),
			eventURL("OPEN", "", session, t0),
			eventURL("TRANSITION_VIEW", "CONSENT", session, t0.Add(time.Second)),
		} {
			resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken()})
			if err != nil {
				t.Fatalf("SubmitRedirect(event): %v", err)
			}
			if resp.GetEvent().GetLinkSessionId() != session || resp.GetItem() != nil {
				t.Fatalf("SubmitRedirect(event) = %v", resp)
			}
		}

		connected := connectedURL(publicToken, session)
		first, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connected, LinkToken: tok.GetLinkToken()})
		if err != nil {
			t.Fatalf("SubmitRedirect(connected): %v", err)
		}
		item := first.GetItem()
		if item.GetItemId() == "" || item.GetClientUserId() != "user-1" || item.GetInstitutionId() != "ins_109508" ||
			item.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_GOOD || item.GetLinkSessionId() != session {
			t.Fatalf("item = %v", item)
		}
		if !hasAccount(item, "Plaid Checking", "0000") {
			t.Errorf("item accounts = %v, want Plaid Checking 0000", item.GetAccounts())
		}
		if first.GetConnected().GetPublicToken() != publicToken || len(first.GetConnected().GetAccounts()) != 1 {
			t.Errorf("connected = %v", first.GetConnected())
		}

		// A client retry gets the same Item without a second exchange.
		again, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connected, LinkToken: tok.GetLinkToken()})
		if err != nil {
			t.Fatalf("SubmitRedirect(connected) retry: %v", err)
		}
		if again.GetItem().GetItemId() != item.GetItemId() {
			t.Errorf("retry item_id = %q, want %q", again.GetItem().GetItemId(), item.GetItemId())
		}
		ex, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: publicToken, ClientUserId: "user-1"})
		if err != nil || ex.GetItem().GetItemId() != item.GetItemId() {
			t.Errorf("ExchangePublicToken(spent token, same user) = %v, %v; want the same item", ex, err)
		}
		if n := ts.emulator.Calls(exchangePath); n != 1 {
			t.Errorf("Plaid exchanges = %d, want 1", n)
		}
		// Another user gets what Plaid says of a spent token, nothing more.
		_, err = c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: publicToken, ClientUserId: "user-2"})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && (badRequestField(st) != "public_token" || strings.Contains(st.Message(), item.GetItemId())) {
			t.Errorf("spent token for another user: %v", st.Proto())
		}

		got, err := c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
		if err != nil || got.GetItem().GetItemId() != item.GetItemId() {
			t.Fatalf("GetItem = %v, %v", got, err)
		}
		list, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-1"})
		if err != nil || len(list.GetItems()) != 1 || list.GetItems()[0].GetItemId() != item.GetItemId() {
			t.Fatalf("ListItems = %v, %v", list, err)
		}
		if other, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-2"}); err != nil || len(other.GetItems()) != 0 {
			t.Errorf("ListItems(user-2) = %v, %v; want none", other, err)
		}

		sess, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: session})
		if err != nil {
			t.Fatalf("GetLinkSession: %v", err)
		}
		var names []string
		for _, e := range sess.GetSession().GetEvents() {
			names = append(names, e.GetEventName())
		}
		if got, want := strings.Join(names, ","), "OPEN,TRANSITION_VIEW,HANDOFF"; got != want {
			t.Errorf("session events = %s, want %s", got, want)
		}
		if s := sess.GetSession(); s.GetItemId() != item.GetItemId() || s.GetConnected() == nil ||
			s.GetConnected().GetPublicToken() != "" || s.GetClientUserId() != "user-1" || s.GetLinkToken() != tok.GetLinkToken() {
			t.Errorf("session = %v", s)
		}

		rm, err := c.RemoveItem(ctx, &linkdv1.RemoveItemRequest{ItemId: item.GetItemId()})
		if err != nil || rm.GetItemId() != item.GetItemId() || rm.GetRequestId() == "" {
			t.Fatalf("RemoveItem = %v, %v", rm, err)
		}
		if n := ts.emulator.Calls(removePath); n != 1 {
			t.Errorf("Plaid removes = %d, want 1", n)
		}
		_, err = c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: item.GetItemId()})
		wantCode(t, err, codes.NotFound)
	})
}

func TestLinkd_ExitAndParse(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, _ := mustLink(t, c, "user-1")
		exit := "plaidlink://exit?status=requires_credentials&error_type=ITEM_ERROR&error_code=ITEM_LOGIN_REQUIRED" +
			"&error_display_message=The%20credentials%20were%20not%20correct.&error_message=the%20credentials%20were%20not%20correct" +
			"&institution_id=ins_3&institution_name=Chase&link_session_id=sess-exit-1&request_id=m8MDnv9okwxFNBV"

		parsed, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: exit})
		if err != nil {
			t.Fatalf("ParseRedirect: %v", err)
		}
		if e := parsed.GetRedirect().GetExit(); e.GetStatus() != "requires_credentials" || e.GetError().GetErrorCode() != "ITEM_LOGIN_REQUIRED" ||
			e.GetError().GetDisplayMessage() != "The credentials were not correct." || e.GetRequestId() != "m8MDnv9okwxFNBV" {
			t.Errorf("parsed exit = %v", e)
		}
		// ParseRedirect stores nothing.
		_, err = c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-exit-1"})
		wantCode(t, err, codes.NotFound)

		if _, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: exit, LinkToken: tok.GetLinkToken()}); err != nil {
			t.Fatalf("SubmitRedirect(exit): %v", err)
		}
		sess, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-exit-1"})
		if err != nil || sess.GetSession().GetExit().GetStatus() != "requires_credentials" {
			t.Errorf("GetLinkSession = %v, %v", sess, err)
		}
	})
}

func TestLinkd_Errors(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		tok, _ := mustLink(t, c, "user-1")
		// submit submits a redirect URL for tok.
		submit := func(u string) func() error {
			return func() error {
				_, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken()})
				return err
			}
		}
		tests := []struct {
			name  string
			call  func() error
			code  codes.Code
			field string // BadRequest field, when the error names one
			plaid string // Plaid error_code in ErrorInfo, when Plaid refused
		}{
			{"ParseRedirect/WrongScheme", func() error {
				_, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: "https://example.com/connected"})
				return err
			}, codes.InvalidArgument, "url", ""},
			{"ParseRedirect/BrokenAccounts", func() error {
				_, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: "plaidlink://connected?public_token=public-sandbox-1&accounts=%5B%7B"})
				return err
			}, codes.InvalidArgument, "url.accounts", ""},
			{"ParseRedirect/Empty", func() error {
				_, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{})
				return err
			}, codes.InvalidArgument, "url", ""},
			{"CreateLinkToken/NoUser", func() error {
				_, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
				return err
			}, codes.InvalidArgument, "client_user_id", ""},
			{"CreateLinkToken/BadCountry", func() error {
				_, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "u", CountryCodes: []string{"usa"}})
				return err
			}, codes.InvalidArgument, "country_codes[0]", ""},
			{"SubmitRedirect/UnknownLinkToken", func() error {
				_, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("OPEN", "", "s1", time.Now()), LinkToken: "link-sandbox-00000000-0000-0000-0000-000000000000"})
				return err
			}, codes.InvalidArgument, "link_token", ""},
			{"SubmitRedirect/SessionIDNotReadable", submit("plaidlink://event?event_name=OPEN&link_session_id=" + strings.Repeat("s", 200)),
				codes.InvalidArgument, "url.link_session_id", ""},
			{"SubmitRedirect/NoSessionID", submit("plaidlink://event?event_name=OPEN"), codes.InvalidArgument, "url.link_session_id", ""},
			{"SubmitRedirect/BadTimestamp", submit("plaidlink://event?event_name=OPEN&link_session_id=s1&timestamp=yesterday"),
				codes.InvalidArgument, "url.timestamp", ""},
			// The public token of a connected redirect is a parameter of
			// url: a malformed one is refused before Plaid, one Plaid
			// refuses is named there too (with Plaid's error).
			{"SubmitRedirect/MalformedPublicToken", func() error {
				before := ts.emulator.Calls(exchangePath)
				err := submit("plaidlink://connected?public_token=test,wells,connected&link_session_id=s2")()
				if n := ts.emulator.Calls(exchangePath) - before; n != 0 {
					t.Errorf("Plaid exchanges = %d, want 0", n)
				}
				return err
			}, codes.InvalidArgument, "url.public_token", ""},
			{"SubmitRedirect/PlaidRefusesPublicToken", submit("plaidlink://connected?public_token=public-sandbox-00000000-0000-0000-0000-000000000000&link_session_id=s3"),
				codes.InvalidArgument, "url.public_token", "INVALID_PUBLIC_TOKEN"},
			{"GetItem/Unknown", func() error {
				_, err := c.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: "no-such-item"})
				return err
			}, codes.NotFound, "", ""},
			{"GetLinkSession/Unknown", func() error {
				_, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "no-such-session"})
				return err
			}, codes.NotFound, "", ""},
			{"RemoveItem/Unknown", func() error {
				_, err := c.RemoveItem(ctx, &linkdv1.RemoveItemRequest{ItemId: "no-such-item"})
				return err
			}, codes.NotFound, "", ""},
			{"ExchangePublicToken/PlaidRefuses", func() error {
				_, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: "public-sandbox-00000000-0000-0000-0000-000000000000", ClientUserId: "u"})
				return err
			}, codes.InvalidArgument, "public_token", "INVALID_PUBLIC_TOKEN"},
			{"CreateSandboxPublicToken/UnknownInstitution", func() error {
				_, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_0"})
				return err
			}, codes.InvalidArgument, "", "INVALID_INSTITUTION"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				st := wantCode(t, err, tt.code)
				if st == nil {
					return
				}
				if tt.field != "" && badRequestField(st) != tt.field {
					t.Errorf("BadRequest field = %q, want %q (%v)", badRequestField(st), tt.field, st.Details())
				}
				if tt.plaid != "" {
					info := plaidErrorInfo(st)
					if info == nil || info.GetMetadata()["error_code"] != tt.plaid || info.GetMetadata()["request_id"] == "" {
						t.Errorf("ErrorInfo = %v, want Plaid error_code %s with a request_id", info, tt.plaid)
					}
				}
			})
		}
	})
}

func TestLinkd_REST(t *testing.T) {
	ts := MustStartServer(t)
	bearer := "Bearer " + ts.APIKey
	tests := []struct {
		name, method, path, auth, body string
		status                         int
		contains                       []string
	}{
		{"Healthz/NoKey", "GET", "/healthz", "", "", 200, nil},
		{"NoKey", "POST", "/v1/link/token/create", "", `{"client_user_id":"u1"}`, 401, []string{"Bearer"}},
		{"WrongKey", "POST", "/v1/link/token/create", "Bearer nope", `{"client_user_id":"u1"}`, 401, nil},
		{"CreateLinkToken", "POST", "/v1/link/token/create", bearer, `{"client_user_id":"u1"}`, 200, []string{`"link_token":"link-sandbox-`, `"webview_url":"http://` + ts.HTTPAddr() + `/link/v2/stable/link.html?isWebview=true&token=link-sandbox-`}},
		{"UnknownJSONField", "POST", "/v1/link/token/create", bearer, `{"client_user_id":"u1","nope":1}`, 400, nil},
		{"BadURL", "POST", "/v1/link/redirect/parse", bearer, `{"url":"plaidlink://nowhere?x=1"}`, 400, []string{`"field_violations"`, `"field":"url"`}},
		{"ParseEvent", "POST", "/v1/link/redirect/parse", bearer, `{"url":"plaidlink://event?event_name=OPEN&is_update_mode=true&link_session_id=s"}`, 200, []string{`{"event":{`, `"event_name":"OPEN"`, `"is_update_mode":true`}},
		{"UnknownItem", "GET", "/v1/items/nope", bearer, "", 404, nil},
		{"PlaidError", "POST", "/v1/item/public_token/exchange", bearer, `{"public_token":"public-sandbox-00000000-0000-0000-0000-000000000000","client_user_id":"u1"}`, 400, []string{`"error_code":"INVALID_PUBLIC_TOKEN"`, `"domain":"plaid.com"`}},
		{"TooLarge", "POST", "/v1/link/redirect/parse", bearer, `{"url":"` + strings.Repeat("a", 70<<10) + `"}`, 413, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := ts.Do(t, tt.method, tt.path, tt.auth, tt.body)
			// protojson varies its spacing on purpose; compare compacted JSON.
			var compact bytes.Buffer
			if json.Compact(&compact, []byte(body)) == nil {
				body = compact.String()
			}
			if code != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.status)
			}
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body %s does not contain %s", body, s)
				}
			}
			if code != 200 && !json.Valid([]byte(body)) {
				t.Errorf("error body is not JSON: %s", body)
			}
		})
	}
}

// TestLinkd_REST_BadRequestNamesField: a body or query the gateway cannot
// decode into the request (a wrong JSON type, an unknown or repeated key,
// not JSON at all, a query value of the wrong type) is a 400 whose
// BadRequest names the field, as every other bad input's is; "body" when
// no one field is at fault.
func TestLinkd_REST_BadRequestNamesField(t *testing.T) {
	ts := MustStartServer(t)
	bearer := "Bearer " + ts.APIKey
	for _, tt := range []struct {
		name, method, path, body, field string
	}{
		{"WrongType", "POST", "/v1/link/redirect/parse", `{"url":123}`, "url"},
		{"ObjectForString", "POST", "/v1/link/redirect/parse", `{"url":{"a":1}}`, "url"},
		// A nested field is named by its path, as linkd's own checks name
		// it, not by the bare JSON name protojson's error gives.
		{"NestedOutOfRange", "POST", "/v1/link/token/create", `{"client_user_id":"u1","hosted_link":{"url_lifetime_seconds":99999999999}}`, "hosted_link.url_lifetime_seconds"},
		{"NestedWrongType", "POST", "/v1/link/token/create", `{"client_user_id":"u1","transactions":{"days_requested":"abc"}}`, "transactions.days_requested"},
		{"NestedHugeNumber", "POST", "/v1/link/token/create", `{"client_user_id":"u1","transactions":{"days_requested":1e400}}`, "transactions.days_requested"},
		{"DeeplyNested", "POST", "/v1/link/token/create", `{"client_user_id":"u1","user":{"address":{"country":7}}}`, "user.address.country"},
		{"RepeatedKeyTwoSpellings", "POST", "/v1/link/token/create", `{"client_user_id":"u1","clientUserId":"u2"}`, "client_user_id"},
		{"UnknownKey", "POST", "/v1/link/token/create", `{"client_user_id":"u1","nope":1}`, "nope"},
		// linkd's own checks of link token options, before Plaid.
		{"ClientNameControl", "POST", "/v1/link/token/create", `{"client_user_id":"u1","client_name":"App\u0000"}`, "client_name"},
		{"WebhookNotHTTP", "POST", "/v1/link/token/create", `{"client_user_id":"u1","webhook":"ftp://hooks.example.com/plaid"}`, "webhook"},
		{"WebhookScript", "POST", "/v1/link/token/create", `{"client_user_id":"u1","webhook":"javascript:alert(1)"}`, "webhook"},
		{"WebhookPortOnly", "POST", "/v1/link/token/create", `{"client_user_id":"u1","webhook":"https://:8080/plaid"}`, "webhook"},
		{"ProductsBalance", "POST", "/v1/link/token/create", `{"client_user_id":"u1","products":["balance"]}`, "products[0]"},
		{"CompletionRedirectNoHost", "POST", "/v1/link/token/create", `{"client_user_id":"u1","hosted_link":{"completion_redirect_uri":"https:///done"}}`, "hosted_link.completion_redirect_uri"},
		{"RedirectURIPortOnly", "POST", "/v1/link/token/create", `{"client_user_id":"u1","redirect_uri":"https://:443/cb"}`, "redirect_uri"},
		// Raw bytes that are not UTF-8 in a string: the field, as gRPC
		// names it, not the body.
		{"NotUTF8", "POST", "/v1/link/redirect/parse", "{\"url\":\"plaidlink://exit?x=\xff\"}", "url"},
		{"NestedNotUTF8", "POST", "/v1/link/token/create", "{\"client_user_id\":\"u1\",\"hostedLink\":{\"completion_redirect_uri\":\"https://a.example/\xc3\"}}", "hosted_link.completion_redirect_uri"},
		{"ListNotUTF8", "POST", "/v1/link/token/create", "{\"client_user_id\":\"u1\",\"products\":[\"auth\",\"\xfe\"]}", "products"},
		{"RepeatedKey", "POST", "/v1/link/redirect/parse", `{"url":"plaidlink://exit","url":"plaidlink://exit"}`, "url"},
		{"NotAnObject", "POST", "/v1/link/redirect/parse", `[]`, "body"},
		{"Truncated", "POST", "/v1/link/redirect/parse", `{"url":`, "body"},
		{"TrailingData", "POST", "/v1/link/redirect/parse", `{"url":"plaidlink://exit"} trailing`, "body"},
		{"TwoObjects", "POST", "/v1/link/redirect/parse", `{"url":"plaidlink://exit"}{"url":"plaidlink://exit"}`, "body"},
		{"QueryNotANumber", "GET", "/v1/users/u1/items?page_size=abc", "", "page_size"},
		{"QueryNotAnEnum", "GET", "/v1/users/u1/items?statuses=BOGUS", "", "statuses"},
		{"QueryNotATime", "GET", "/v1/link/conversion?since=yesterday", "", "since"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := ts.Do(t, tt.method, tt.path, bearer, tt.body)
			var resp struct {
				Code    int `json:"code"`
				Details []struct {
					Violations []struct {
						Field string `json:"field"`
					} `json:"field_violations"`
				} `json:"details"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("%s %s = %d, body not JSON: %s", tt.method, tt.path, code, body)
			}
			if code != http.StatusBadRequest || resp.Code != int(codes.InvalidArgument) {
				t.Fatalf("%s %s = %d %s, want 400 INVALID_ARGUMENT", tt.method, tt.path, code, body)
			}
			if len(resp.Details) == 0 || len(resp.Details[0].Violations) == 0 || resp.Details[0].Violations[0].Field != tt.field {
				t.Errorf("%s %s = %s, want a BadRequest naming %q", tt.method, tt.path, body, tt.field)
			}
		})
	}
}

// TestLinkd_REST_ChunkedTooLarge: a body of undeclared length over the
// limit gets the same 413 as a declared one.
func TestLinkd_REST_ChunkedTooLarge(t *testing.T) {
	ts := MustStartServer(t)
	for _, tt := range []struct {
		name   string
		size   int
		status int
	}{{"UnderLimit", 1 << 10, http.StatusOK}, {"OverLimit", 70 << 10, http.StatusRequestEntityTooLarge}} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"url":"plaidlink://exit?status=` + strings.Repeat("a", tt.size) + `"}`
			req, err := http.NewRequest("POST", ts.BaseURL+"/v1/link/redirect/parse", io.NopCloser(strings.NewReader(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+ts.APIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !json.Valid(b) {
				t.Errorf("chunked %d bytes = %d %.200s, want %d", len(body), resp.StatusCode, b, tt.status)
			}
		})
	}
}

func TestLinkd_GRPCOpenServices(t *testing.T) {
	ts := MustStartServer(t)
	conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a key = %v, %v; want SERVING", hc, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var found bool
	for _, s := range resp.GetListServicesResponse().GetService() {
		found = found || s.GetName() == "linkd.v1.LinkService"
	}
	if !found {
		t.Errorf("reflection lists %v, want linkd.v1.LinkService", resp.GetListServicesResponse().GetService())
	}
	_, err = linkdv1.NewLinkServiceClient(conn).ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "u"})
	wantCode(t, err, codes.Unauthenticated)
}

func TestLinkd_ConcurrentSubmits(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	tok, publicToken := mustLink(t, c, "user-1")
	req := &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-concurrent"), LinkToken: tok.GetLinkToken()}

	const n = 16
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.SubmitRedirect(context.Background(), req)
			if err != nil {
				t.Errorf("submit %d: %v", i, err)
				return
			}
			ids[i] = resp.GetItem().GetItemId()
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id == "" || id != ids[0] {
			t.Errorf("submit %d got item %q, want %q", i, id, ids[0])
		}
	}
	if got := ts.emulator.Calls(exchangePath); got != 1 {
		t.Errorf("Plaid exchanges = %d, want 1", got)
	}
}

func TestLinkd_Restart(t *testing.T) {
	dir := t.TempDir()
	ts := mustStartServerIn(t, dir, nil)
	tok, publicToken := mustLink(t, ts.GRPC(t), "user-1")
	resp, err := ts.GRPC(t).SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-restart"), LinkToken: tok.GetLinkToken()})
	if err != nil {
		t.Fatal(err)
	}
	ts.conn.Close()
	ts.conn = nil
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}

	ts2 := mustStartServerIn(t, dir, nil)
	if ts2.APIKey != ts.APIKey {
		t.Errorf("generated API key changed across restarts")
	}
	got, err := ts2.GRPC(t).GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: resp.GetItem().GetItemId()})
	if err != nil || got.GetItem().GetInstitutionId() != "ins_109508" {
		t.Fatalf("GetItem after restart = %v, %v", got, err)
	}
	if _, err := ts2.db.AccessToken(context.Background(), resp.GetItem().GetItemId()); err != nil {
		t.Errorf("access token after restart: %v", err)
	}
}

func TestLinkd_Production(t *testing.T) {
	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "prod-client", Secret: "prod-secret-value"})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	ts := MustStartServer(t, "PLAID_CLIENT_ID=prod-client", "PLAID_SECRET=prod-secret-value", "PLAID_ENV=production",
		"PLAID_BASE_URL="+emu.URL(), "LINKD_API_KEYS=key-one,key-two")
	if ts.emulator != nil {
		t.Fatal("embedded emulator started although credentials are set")
	}
	_, err = ts.GRPC(t).CreateSandboxPublicToken(context.Background(), &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
	wantCode(t, err, codes.FailedPrecondition)
	if n := emu.Calls("/sandbox/public_token/create"); n != 0 {
		t.Errorf("sandbox calls reaching Plaid = %d, want 0", n)
	}
	_, err = ts.GRPC(t).CreateLinkToken(context.Background(), &linkdv1.CreateLinkTokenRequest{ClientUserId: "u1", RedirectUri: "http://localhost:3000/oauth"})
	if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "redirect_uri" {
		t.Errorf("http redirect_uri in production: field %q, want redirect_uri", badRequestField(st))
	}
	code, _ := ts.Do(t, "POST", "/v1/link/token/create", "Bearer key-two", `{"client_user_id":"u1"}`)
	if code != http.StatusOK {
		t.Errorf("second configured API key: HTTP %d", code)
	}
	if strings.Contains(ts.Logs.String(), "prod-secret-value") {
		t.Error("the Plaid secret appears in the logs")
	}
}

// TestLinkd_NoSecretsLeak runs the whole flow over REST and looks for every
// access token and key in the responses, the logs and the raw database file.
// Three Items of one user at one bank: duplicates allowed for it.
func TestLinkd_NoSecretsLeak(t *testing.T) {
	ts := MustStartServer(t, "LINKD_DUPLICATE_ITEMS=off")
	bearer := "Bearer " + ts.APIKey
	var bodies strings.Builder
	do := func(method, path, body string) string {
		code, b := ts.Do(t, method, path, bearer, body)
		bodies.WriteString(b)
		if code != 200 {
			t.Fatalf("%s %s = %d %s", method, path, code, b)
		}
		return b
	}
	var tok struct {
		LinkToken string `json:"link_token"`
	}
	must(t, json.Unmarshal([]byte(do("POST", "/v1/link/token/create", `{"client_user_id":"u1"}`)), &tok))
	var itemIDs []string
	for i := range 3 {
		var pt struct {
			PublicToken string `json:"public_token"`
		}
		must(t, json.Unmarshal([]byte(do("POST", "/v1/sandbox/public_token/create", `{"institution_id":"ins_109508"}`)), &pt))
		body, _ := json.Marshal(map[string]string{"url": connectedURL(pt.PublicToken, fmt.Sprintf("sess-leak-%d", i)), "link_token": tok.LinkToken})
		var resp struct {
			Item struct {
				ItemID string `json:"item_id"`
			} `json:"item"`
		}
		must(t, json.Unmarshal([]byte(do("POST", "/v1/link/redirect/submit", string(body))), &resp))
		itemIDs = append(itemIDs, resp.Item.ItemID)
		do("GET", "/v1/items/"+resp.Item.ItemID, "")
	}
	do("GET", "/v1/users/u1/items", "")
	do("DELETE", "/v1/items/"+itemIDs[0], "")
	// Update mode: linkd looks the access token up and sends it to Plaid.
	do("POST", "/v1/link/token/create", `{"client_user_id":"u1","item_id":"`+itemIDs[1]+`"}`)
	do("POST", "/v1/sandbox/item/reset_login", `{"item_id":"`+itemIDs[1]+`"}`)

	var secrets []string
	for _, id := range itemIDs[1:] {
		at, err := ts.db.AccessToken(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, at.Reveal())
	}
	secrets = append(secrets, ts.APIKey)
	raw, err := os.ReadFile(ts.Config.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if !strings.HasPrefix(s, "access-sandbox-") && !strings.HasPrefix(s, "lk_") {
			t.Fatalf("unexpected secret shape %q", s[:8])
		}
		for where, text := range map[string]string{"responses": bodies.String(), "logs": ts.Logs.String(), "database file": string(raw)} {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%s...) appears in the %s", s[:10], where)
			}
		}
	}
	if strings.Contains(bodies.String(), "access-sandbox-") || strings.Contains(ts.Logs.String(), "access-sandbox-") {
		t.Error("an access token prefix appears in responses or logs")
	}

	// The bbolt store keeps each sealed token in its Item's record: no
	// Item read over gRPC (which would send fields the API message does
	// not know) or REST carries its bytes.
	var sealed [][]byte
	must(t, ts.bolt.Export(context.Background(), func(r linkd.Record) error {
		if r.Item != nil {
			sealed = append(sealed, r.Item.Sealed.GetCiphertext(), r.Item.Sealed.GetNonce())
		}
		return nil
	}))
	if len(sealed) != 4 {
		t.Fatalf("Export gave %d sealed pieces, want 4: the check would prove nothing", len(sealed))
	}
	c := ts.GRPC(t)
	var msgs []proto.Message
	for _, id := range itemIDs[1:] {
		got, err := c.GetItem(context.Background(), &linkdv1.GetItemRequest{ItemId: id})
		must(t, err)
		msgs = append(msgs, got)
	}
	list, err := c.ListItems(context.Background(), &linkdv1.ListItemsRequest{ClientUserId: "u1"})
	must(t, err)
	msgs = append(msgs, list)
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		must(t, err)
		for _, piece := range sealed {
			if bytes.Contains(b, piece) || strings.Contains(bodies.String(), base64.StdEncoding.EncodeToString(piece)) {
				t.Errorf("a sealed access token's bytes appear in a %T", m)
			}
		}
	}
}

// hasAccount reports whether item has an account with that name and mask.
func hasAccount(item *linkdv1.Item, name, mask string) bool {
	for _, a := range item.GetAccounts() {
		if a.GetName() == name && a.GetMask() == mask && a.GetId() != "" {
			return true
		}
	}
	return false
}

// wantCode fails unless err is a status with code want, and returns it.
func wantCode(t *testing.T, err error, want codes.Code) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != want {
		t.Errorf("error = %v, want code %v", err, want)
		return nil
	}
	return st
}

// badRequestField returns the first field named by a BadRequest detail.
func badRequestField(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// plaidErrorInfo returns the ErrorInfo detail from Plaid, if any.
func plaidErrorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == "plaid.com" {
			return info
		}
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLinkd_SubmitRedirect_WebviewEncodings submits one connected
// redirect, an account named "Checking & Savings", as each webview or app
// hands it over: the JSON's '&' raw while some of its quotes, apostrophes
// and brackets are percent-encoded. Each links its Item.
func TestLinkd_SubmitRedirect_WebviewEncodings(t *testing.T) {
	forms := map[string]string{
		// WebKit (WKWebView): quotes and spaces encoded.
		"WebKit": `'[{%22_id%22:%22acc-1%22,%22meta%22:{%22name%22:%22Checking%20&%20Savings%22,%22number%22:%220000%22}}]'`,
		// Chromium (Android WebView): the apostrophe too.
		"Chromium": `%27[{%22_id%22:%22acc-1%22,%22meta%22:{%22name%22:%22Checking%20&%20Savings%22,%22number%22:%220000%22}}]%27`,
		// Swift's urlQueryAllowed: brackets and braces too, never '&'.
		"URLQueryAllowed": `'%5B%7B%22_id%22:%22acc-1%22,%22meta%22:%7B%22name%22:%22Checking%20&%20Savings%22,%22number%22:%220000%22%7D%7D%5D'`,
	}
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		for name, accounts := range forms {
			t.Run(name, func(t *testing.T) {
				tok, publicToken := mustLink(t, c, "user-"+name)
				session := "79e772be-547d-4c9c-8b76-" + fmt.Sprintf("%012x", len(name))
				u := "plaidlink://connected?public_token=" + publicToken + "&institution_id=ins_109508&institution_name=First%20Platypus%20Bank" +
					"&accounts=" + accounts + "&link_session_id=" + session
				resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: u, LinkToken: tok.GetLinkToken()})
				if err != nil {
					t.Fatalf("SubmitRedirect: %v", err)
				}
				if accts := resp.GetConnected().GetAccounts(); len(accts) != 1 || accts[0].GetName() != "Checking & Savings" || accts[0].GetMask() != "0000" {
					t.Errorf("connected accounts = %v, want Checking & Savings 0000", accts)
				}
				if resp.GetItem().GetItemId() == "" || resp.GetItem().GetLinkSessionId() != session {
					t.Errorf("item = %v, want the linked Item", resp.GetItem())
				}
			})
		}
	})
}
