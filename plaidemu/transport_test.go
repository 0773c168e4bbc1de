package plaidemu_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// roundTrip posts body to path through client and returns the status, the
// Content-Type and Content-Length headers and the body with its
// request_id blanked (each answer has its own).
func roundTrip(t *testing.T, ctx context.Context, client *http.Client, url, contentType, body string) (int, string, string, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Plaid-Client-Id", testClientID)
	req.Header.Set("Plaid-Secret", testSecret)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	blank := regexp.MustCompile(`"request_id":"[0-9A-Za-z]{15}"`).ReplaceAllString(string(raw), `"request_id":""`)
	return resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Length"), blank, nil
}

// TestEmulator_Transport: a request carried in process gets the answer the
// listener gives, status, headers and bytes, and its effects are the
// emulator's own (an Item made through one is seen through the other).
func TestEmulator_Transport(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	ctx := context.Background()
	inProcess := &http.Client{Transport: e.Transport()}
	accessToken, _ := MustCreateItem(t, e, "ins_109508")
	for _, c := range []struct{ name, path, contentType, body string }{
		{"unknown path", "/no/such/endpoint", "application/json", `{}`},
		{"not JSON", "/accounts/get", "text/plain", `{}`},
		{"malformed body", "/accounts/get", "application/json", `{"access_token":`},
		{"unknown access token", "/accounts/get", "application/json", `{"access_token":"access-sandbox-00000000-0000-0000-0000-000000000000"}`},
		{"bad public token", "/item/public_token/exchange", "application/json", `{"public_token":"nope"}`},
		{"accounts", "/accounts/get", "application/json", `{"access_token":"` + accessToken + `"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, wct, wcl, wbody, err := roundTrip(t, ctx, http.DefaultClient, e.URL()+c.path, c.contentType, c.body)
			if err != nil {
				t.Fatal(err)
			}
			gs, gct, gcl, gbody, err := roundTrip(t, ctx, inProcess, e.URL()+c.path, c.contentType, c.body)
			if err != nil {
				t.Fatal(err)
			}
			if gs != ws || gct != wct || gcl != wcl || gbody != wbody {
				t.Errorf("in process: %d %q %s %s\nover the listener: %d %q %s %s", gs, gct, gcl, gbody, ws, wct, wcl, wbody)
			}
		})
	}

	status, _, _, body, err := roundTrip(t, ctx, inProcess, e.URL()+"/sandbox/public_token/create", "application/json",
		`{"institution_id":"ins_109508","initial_products":["auth"]}`)
	if err != nil || status != http.StatusOK {
		t.Fatalf("sandbox public token in process: %d %s %v", status, body, err)
	}
	pt := regexp.MustCompile(`public-sandbox-[0-9a-f-]{36}`).FindString(body)
	r := Post(t, e, "/item/public_token/exchange", map[string]any{"public_token": pt})
	WantOK(t, r)
	if n := e.Calls("/sandbox/public_token/create"); n != 2 { // MustCreateItem's and this one
		t.Errorf("sandbox public tokens = %d, want 2", n)
	}
}

// TestEmulator_Transport_Hang: an answer the emulator withholds
// (HangAfterNext) leaves the in-process caller with its context's error,
// as over a connection, although the request took effect.
func TestEmulator_Transport_Hang(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	e.HangAfterNext("/sandbox/public_token/create")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, _, body, err := roundTrip(t, ctx, &http.Client{Transport: e.Transport()}, e.URL()+"/sandbox/public_token/create", "application/json",
		`{"institution_id":"ins_109508","initial_products":["auth"]}`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("withheld answer: %q, %v; want the context's deadline", body, err)
	}
	if n := e.Calls("/sandbox/public_token/create"); n != 1 {
		t.Errorf("requests served = %d, want 1", n)
	}
}
