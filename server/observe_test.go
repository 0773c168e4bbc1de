package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/linkd/linkd"
)

// TestGatewayRoute: each request's CallInfo gets the label of the route it
// matched, "METHOD /pattern" with the proto's variable syntax, also when
// one route's label is kept between requests and when a request reaches a
// route under another method (a form POST the gateway serves on a GET
// route).
func TestGatewayRoute(t *testing.T) {
	mux := runtime.NewServeMux(runtime.WithMiddlewares(gatewayRoute))
	ok := func(w http.ResponseWriter, _ *http.Request, _ map[string]string) { w.WriteHeader(http.StatusOK) }
	for _, p := range []struct{ method, path string }{{"GET", "/v1/items/{item_id}"}, {"POST", "/v1/link/token/create"}, {"GET", "/v1/items"}} {
		if err := mux.HandlePath(p.method, p.path, ok); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		method, path, contentType, want string
	}{
		{"GET", "/v1/items/item-1", "", "GET /v1/items/{item_id}"},
		{"GET", "/v1/items/item-2", "", "GET /v1/items/{item_id}"},
		{"POST", "/v1/link/token/create", "application/json", "POST /v1/link/token/create"},
		{"POST", "/v1/link/token/create", "application/json", "POST /v1/link/token/create"},
		{"POST", "/v1/items/item-3", "application/x-www-form-urlencoded", "POST /v1/items/{item_id}"},
		{"GET", "/v1/items/item-4", "", "GET /v1/items/{item_id}"},
		{"GET", "/v1/items", "", "GET /v1/items"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(""))
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		call := &linkd.CallInfo{}
		r = r.WithContext(linkd.WithCallInfo(r.Context(), call))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s %s: status %d", tt.method, tt.path, w.Code)
		}
		if got := call.Route(); got != tt.want {
			t.Errorf("%s %s: route %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}
