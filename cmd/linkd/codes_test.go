package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestLinkd_WrongCodes: input the decoders refuse is the client's mistake,
// never the server's: 400 naming the field (with or without credentials),
// 414 for a path too long to be a request, 405 with Allow for a method a
// path does not take.
func TestLinkd_WrongCodes(t *testing.T) {
	ts := MustStartServer(t)
	auth := "Bearer " + ts.APIKey
	for _, tt := range []struct {
		name, method, path, auth string
		want                     int
		field                    string // in the BadRequest detail, when the answer is 400; Allow, when 405
	}{
		{"InvalidUTF8PathParam", "GET", "/v1/items/%FF%FE", auth, http.StatusBadRequest, "item_id"},
		{"InvalidUTF8PathParamNoCredentials", "GET", "/v1/items/%FF%FE", "", http.StatusBadRequest, "item_id"},
		{"InvalidUTF8UserPathParam", "GET", "/v1/users/%C3%28/items", auth, http.StatusBadRequest, "client_user_id"},
		{"InvalidUTF8Query", "GET", "/v1/users/user-1/items?page_token=%FF", auth, http.StatusBadRequest, "page_token"},
		{"InvalidTimestampQuery", "GET", "/v1/link/conversion?since=%FF", auth, http.StatusBadRequest, "since"},
		{"PathOver64KiB", "GET", "/v1/items/" + strings.Repeat("a", 70<<10), auth, http.StatusRequestURITooLong, ""},
		{"PUT", "PUT", "/v1/items/item-1", auth, http.StatusMethodNotAllowed, "DELETE, GET"},
		// Routes that are not RPCs answer a wrong method as the RPCs do.
		{"WebhookGET", "GET", "/v1/webhooks/plaid", "", http.StatusMethodNotAllowed, "POST"},
		{"OpenAPIPOST", "POST", "/openapi.json", auth, http.StatusMethodNotAllowed, "GET"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := doRaw(t, ts, tt.method, tt.path, tt.auth)
			if code != tt.want {
				t.Fatalf("HTTP %d %s, want %d", code, body, tt.want)
			}
			if code == http.StatusBadRequest && tt.field != "" && !strings.Contains(body, `"field":"`+tt.field+`"`) && !strings.Contains(body, `"field": "`+tt.field+`"`) {
				t.Errorf("body %s does not name field %q", body, tt.field)
			}
			if code == http.StatusMethodNotAllowed && (hdr.Get("Allow") != tt.field || !json.Valid([]byte(body))) {
				t.Errorf("Allow = %q, want %q; body %s", hdr.Get("Allow"), tt.field, body)
			}
		})
	}

	t.Run("GRPCInvalidUTF8", func(t *testing.T) {
		// A client that skips proto's own check (any language's raw
		// bytes) sends a string field that is not UTF-8.
		raw := protowire.AppendTag(nil, 1, protowire.BytesType)
		raw = protowire.AppendBytes(raw, []byte{0xff, 0xfe})
		var out linkdv1.GetItemResponse
		ts.GRPC(t)
		err := ts.conn.Invoke(context.Background(), linkdv1.LinkService_GetItem_FullMethodName, rawMessage(raw), &out,
			grpc.ForceCodec(rawCodec{}))
		st := wantCode(t, err, codes.InvalidArgument)
		if st != nil && badRequestField(st) != "item_id" {
			t.Errorf("field %q, want item_id", badRequestField(st))
		}
	})
}

// rawMessage is a request already in wire format.
type rawMessage []byte

// rawCodec sends a rawMessage as it is and decodes answers as proto.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(rawMessage); ok {
		return r, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }

// doRaw sends a request with the given authorization (none when empty) and
// returns the status, body and headers of the answer.
func doRaw(t *testing.T, ts *testServer, method, path, auth string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.BaseURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestLinkd_NoMethodOverride: a request does what its own method says.
// grpc-gateway by default lets a form-encoded POST become any other method
// through X-HTTP-Method-Override (its path-length fallback), so a POST to
// an Item's path removed it: a method the path does not take (405 with
// Allow, as the README promises), logged by proxies and WAFs in front of
// linkd as a POST.
func TestLinkd_NoMethodOverride(t *testing.T) {
	ts := MustStartServer(t)
	c := ts.GRPC(t)
	item := mustConnect(t, c, "user-1", "override-1")
	for _, override := range []string{"DELETE", "GET"} {
		req, err := http.NewRequest("POST", ts.BaseURL+"/v1/items/"+item.GetItemId(), strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ts.APIKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-HTTP-Method-Override", override)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "DELETE, GET" {
			t.Errorf("POST with X-HTTP-Method-Override: %s = HTTP %d (Allow %q) %s, want 405 with Allow DELETE, GET", override, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	mustGetItem(t, c, item.GetItemId())
}
