package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd/openapi"
	"github.com/linkd/linkd/openapi/openapitest"
	"github.com/linkd/linkd/plaidemu"
	"github.com/linkd/linkd/server"
)

// TestLinkd_OpenAPI calls every REST route of a real linkd with valid
// requests, and some with invalid ones, and checks each real response body
// against the schema the served GET /openapi.json declares for the route
// and status. Every route the document declares must have been answered
// with 200 at least once, so a route added without a call here fails.
func TestLinkd_OpenAPI(t *testing.T) {
	ts := MustStartServer(t)
	catcher := newWebhookCatcher(t)

	code, served := ts.Do(t, http.MethodGet, openapi.Path, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s without a key = %d, want 200: %s", openapi.Path, code, served)
	}
	if served != string(openapi.Document()) {
		t.Fatalf("GET %s is not the embedded document", openapi.Path)
	}
	doc, err := openapitest.Parse([]byte(served))
	if err != nil {
		t.Fatalf("served document: %v", err)
	}

	auth := "Bearer " + ts.APIKey
	answered := map[string]bool{}
	// call sends a request to route (its method and pattern, as the
	// document names it) at path, wants status, validates the body against
	// the document and returns it decoded.
	call := func(route, path, auth, body string, want int) map[string]any {
		t.Helper()
		method, _, _ := strings.Cut(route, " ")
		code, resp := ts.Do(t, method, path, auth, body)
		if code != want {
			t.Fatalf("%s %s = %d, want %d: %s", method, path, code, want, resp)
		}
		if err := doc.ValidateResponse(route, code, []byte(resp)); err != nil {
			t.Errorf("%s %s answered %d with a body the document does not declare: %v\nbody: %s", method, path, code, err, resp)
		}
		if code == http.StatusOK {
			answered[route] = true
		}
		var out map[string]any
		json.Unmarshal([]byte(resp), &out)
		return out
	}
	str := func(m map[string]any, keys ...string) string {
		t.Helper()
		var v any = m
		for _, k := range keys {
			v = v.(map[string]any)[k]
		}
		s, ok := v.(string)
		if !ok || s == "" {
			t.Fatalf("%v: no %v", m, keys)
		}
		return s
	}
	jsonBody := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	call("GET /openapi.json", openapi.Path, "", "", 200)
	call("GET /healthz", "/healthz", "", "", 200)

	tok := call("POST /v1/link/token/create", "/v1/link/token/create", auth,
		jsonBody(map[string]any{"client_user_id": "user-1", "webhook": catcher.srv.URL}), 200)
	linkToken := str(tok, "link_token")
	const redirectURI = "https://app.example.com/plaid/oauth"
	oauthTok := call("POST /v1/link/token/create", "/v1/link/token/create", auth,
		jsonBody(map[string]any{"client_user_id": "user-1", "redirect_uri": redirectURI}), 200)

	open := eventURL("OPEN", "", "sess-openapi", time.Now())
	call("POST /v1/link/redirect/parse", "/v1/link/redirect/parse", auth, jsonBody(map[string]any{"url": open}), 200)
	call("POST /v1/link/redirect/submit", "/v1/link/redirect/submit", auth,
		jsonBody(map[string]any{"link_token": linkToken, "url": open}), 200)
	publicToken, err := ts.emulator.CreatePublicToken(linkToken, "ins_109508", nil)
	if err != nil {
		t.Fatalf("emulator Link session: %v", err)
	}
	connected := call("POST /v1/link/redirect/submit", "/v1/link/redirect/submit", auth,
		jsonBody(map[string]any{"link_token": linkToken, "url": connectedURL(publicToken, "sess-openapi")}), 200)
	itemID := str(connected, "item", "item_id")

	sandbox := func() string {
		pt := call("POST /v1/sandbox/public_token/create", "/v1/sandbox/public_token/create", auth,
			`{"institution_id":"ins_109508","initial_products":["transactions"]}`, 200)
		return str(pt, "public_token")
	}
	call("POST /v1/item/public_token/exchange", "/v1/item/public_token/exchange", auth,
		jsonBody(map[string]any{"public_token": sandbox(), "client_user_id": "user-2"}), 200)
	// The same bank and account linked again by user-1: 409 DUPLICATE_ITEM.
	again := str(call("POST /v1/link/token/create", "/v1/link/token/create", auth, `{"client_user_id":"user-1"}`, 200), "link_token")
	againPublic, err := ts.emulator.CreatePublicToken(again, "ins_109508", nil)
	if err != nil {
		t.Fatalf("emulator Link session: %v", err)
	}
	dup := call("POST /v1/link/redirect/submit", "/v1/link/redirect/submit", auth,
		jsonBody(map[string]any{"link_token": again, "url": connectedURL(againPublic, "sess-openapi-2")}), http.StatusConflict)
	if !strings.Contains(jsonBody(dup), "DUPLICATE_ITEM") {
		t.Errorf("a duplicate Item's 409 does not say DUPLICATE_ITEM: %v", dup)
	}

	call("POST /v1/link/token/get", "/v1/link/token/get", auth, jsonBody(map[string]any{"link_token": linkToken}), 200)
	hosted := str(call("POST /v1/link/token/create", "/v1/link/token/create", auth,
		`{"client_user_id":"user-3","hosted_link":{}}`, 200), "link_token")
	call("POST /v1/sandbox/link/session/complete", "/v1/sandbox/link/session/complete", auth,
		jsonBody(map[string]any{"link_token": hosted, "institution_id": "ins_109508"}), 200)
	call("GET /v1/items/{item_id}", "/v1/items/"+url.PathEscape(itemID), auth, "", 200)
	call("GET /v1/users/{client_user_id}/items", "/v1/users/user-1/items", auth, "", 200)
	call("GET /v1/users/{client_user_id}/items", "/v1/users/user-1/items?statuses=ITEM_STATUS_GOOD", auth, "", 200)
	call("GET /v1/link/sessions/{link_session_id}", "/v1/link/sessions/sess-openapi", auth, "", 200)
	call("POST /v1/link/oauth/resume", "/v1/link/oauth/resume", auth, jsonBody(map[string]any{
		"link_token": str(oauthTok, "link_token"), "received_redirect_uri": redirectURI + "?oauth_state_id=5f9b7d2c-8c1e-4a0e-9d5b-2b8c4f1e6a70"}), 200)

	call("POST /v1/sandbox/item/reset_login", "/v1/sandbox/item/reset_login", auth, jsonBody(map[string]any{"item_id": itemID}), 200)
	genuine := catcher.take(t)
	postHook := func(jwt string, body []byte, want int) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, ts.BaseURL+server.WebhookPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Plaid-Verification", jwt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("POST %s = %d, want %d: %s", server.WebhookPath, resp.StatusCode, want, buf.String())
		}
		if err := doc.ValidateResponse("POST "+server.WebhookPath, resp.StatusCode, buf.Bytes()); err != nil {
			t.Errorf("POST %s answered %d with a body the document does not declare: %v\nbody: %s", server.WebhookPath, resp.StatusCode, err, buf.String())
		}
		if want == http.StatusOK {
			answered["POST "+server.WebhookPath] = true
		}
	}
	postHook(genuine.jwt, genuine.body, 200)
	postHook(genuine.jwt, genuine.body, 200) // a replay: ignored, same answer
	postHook("eyJhbGciOiJub25lIn0.e30.", []byte(`{"webhook_type":"ITEM","webhook_code":"LOGIN_REPAIRED","item_id":"x"}`), 401)

	call("POST /v1/sandbox/item/fire_webhook", "/v1/sandbox/item/fire_webhook", auth,
		jsonBody(map[string]any{"item_id": itemID, "webhook_code": "PENDING_DISCONNECT"}), 200)
	call("POST /v1/sandbox/item/fire_webhook", "/v1/sandbox/item/fire_webhook", auth,
		jsonBody(map[string]any{"item_id": itemID, "webhook_code": "PENDING_EXPIRATION"}), http.StatusBadRequest)
	call("POST /v1/emulator/item/state", "/v1/emulator/item/state", auth,
		jsonBody(map[string]any{"item_id": itemID, "state": "PENDING_EXPIRATION"}), 200)
	// An Item with an account pending automated micro-deposit verification.
	pending := call("POST /v1/sandbox/public_token/create", "/v1/sandbox/public_token/create", auth, jsonBody(map[string]any{
		"institution_id": plaidemu.MicrodepositsInstitutionID, "initial_products": []string{"auth"},
		"override_username": plaidemu.MicrodepositsUsername, "override_password": plaidemu.MicrodepositsPassword}), 200)
	pendingItem := call("POST /v1/item/public_token/exchange", "/v1/item/public_token/exchange", auth,
		jsonBody(map[string]any{"public_token": str(pending, "public_token"), "client_user_id": "user-2"}), 200)
	accounts, _ := pendingItem["accounts"].([]any)
	if len(accounts) != 1 {
		t.Fatalf("micro-deposit Item accounts = %v, want one", pendingItem["accounts"])
	}
	call("POST /v1/sandbox/item/set_verification_status", "/v1/sandbox/item/set_verification_status", auth, jsonBody(map[string]any{
		"item_id": str(pendingItem, "item_id"), "account_id": accounts[0].(map[string]any)["id"], "verification_status": "automatically_verified"}), 200)
	call("GET /v1/link/conversion", "/v1/link/conversion", auth, "", 200)
	call("GET /v1/link/conversion", "/v1/link/conversion?since="+url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)), auth, "", 200)
	call("DELETE /v1/items/{item_id}", "/v1/items/"+url.PathEscape(itemID), auth, "", 200)
	call("POST /v1/users/{client_user_id}/delete", "/v1/users/user-2/delete", auth, "{}", 200)

	// Errors come in the shape the default response declares.
	bad := call("POST /v1/link/token/create", "/v1/link/token/create", auth, `{}`, http.StatusBadRequest)
	if !strings.Contains(jsonBody(bad), "google.rpc.BadRequest") {
		t.Errorf("a 400 carries no google.rpc.BadRequest: %v", bad)
	}
	call("POST /v1/link/token/create", "/v1/link/token/create", "", `{"client_user_id":"user-1"}`, http.StatusUnauthorized)
	call("GET /v1/items/{item_id}", "/v1/items/"+url.PathEscape(itemID), auth, "", http.StatusNotFound)
	call("POST /v1/link/redirect/parse", "/v1/link/redirect/parse", auth,
		`{"url":"`+strings.Repeat("x", server.MaxRequestBytes)+`"}`, http.StatusRequestEntityTooLarge)

	for _, route := range doc.Routes() {
		if !answered[route] {
			t.Errorf("%s was never answered with 200: add a call to this test", route)
		}
	}
}
