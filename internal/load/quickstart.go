package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Quickstart is the transport that drives the Go backend of Plaid's
// quickstart (github.com/plaid/quickstart, go/server.go) instead of linkd,
// pointed at the same Plaid emulator, for the comparisons in BENCHMARKS.md.
// It has two of the scenarios, on the quickstart's routes: quickstartRoutes.
const Quickstart = "quickstart"

// quickstartRoutes maps the scenarios the quickstart can run to the route
// each timed call posts to (what the table shows in place of an RPC).
var quickstartRoutes = map[string]string{
	"create-link-token": "/api/create_link_token",
	"exchange":          "/api/set_access_token",
}

// quickstartProducts are the products the minted public tokens are for:
// the quickstart's default (PLAID_PRODUCTS unset) and linkd's.
var quickstartProducts = []string{"transactions"}

// quickstartAPI calls the quickstart's routes, and mints sandbox public
// tokens straight from Plaid (the emulator), as the quickstart's frontend
// gets them from Link. It implements API; the calls the quickstart has no
// route for answer Unimplemented.
type quickstartAPI struct {
	base      string // the quickstart, "http://host:port"
	plaidURL  string // Plaid or the emulator, for minting
	clientID  string
	secret    string
	http      *http.Client
	tokenPath string // plaidURL + /sandbox/public_token/create
}

var _ API = (*quickstartAPI)(nil)

// newQuickstart returns a client of the quickstart at addr (host:port) that
// mints public tokens at plaidURL with clientID and secret, keeping up to
// concurrency connections open to each, and a function that closes them.
func newQuickstart(addr, plaidURL, clientID, secret string, concurrency int) (*quickstartAPI, func() error) {
	tr := keepAliveTransport(concurrency)
	plaidURL = strings.TrimRight(plaidURL, "/")
	c := &quickstartAPI{
		base: "http://" + addr, plaidURL: plaidURL, clientID: clientID, secret: secret,
		http: &http.Client{Transport: tr}, tokenPath: plaidURL + "/sandbox/public_token/create",
	}
	return c, func() error { tr.CloseIdleConnections(); return nil }
}

// CreateLinkToken posts to /api/create_link_token. The quickstart takes no
// request body (it names its user itself), so in is ignored.
func (c *quickstartAPI) CreateLinkToken(ctx context.Context, _ *linkdv1.CreateLinkTokenRequest, _ ...grpc.CallOption) (*linkdv1.CreateLinkTokenResponse, error) {
	var out struct {
		LinkToken string `json:"link_token"`
	}
	if err := c.post(ctx, c.base+quickstartRoutes["create-link-token"], "", nil, &out); err != nil {
		return nil, err
	}
	if out.LinkToken == "" {
		return nil, status.Error(codes.Internal, "the quickstart answered without a link_token")
	}
	return &linkdv1.CreateLinkTokenResponse{LinkToken: &linkdv1.LinkToken{LinkToken: out.LinkToken}}, nil
}

// ExchangePublicToken posts the public token as the form field
// public_token to /api/set_access_token, as the quickstart's frontend does.
func (c *quickstartAPI) ExchangePublicToken(ctx context.Context, in *linkdv1.ExchangePublicTokenRequest, _ ...grpc.CallOption) (*linkdv1.ExchangePublicTokenResponse, error) {
	form := url.Values{"public_token": {in.GetPublicToken()}}.Encode()
	var out struct {
		ItemID string `json:"item_id"`
	}
	if err := c.post(ctx, c.base+quickstartRoutes["exchange"], "application/x-www-form-urlencoded", []byte(form), &out); err != nil {
		return nil, err
	}
	if out.ItemID == "" {
		return nil, status.Error(codes.Internal, "the quickstart answered without an item_id")
	}
	return &linkdv1.ExchangePublicTokenResponse{Item: &linkdv1.Item{ItemId: out.ItemID}}, nil
}

// CreateSandboxPublicToken asks Plaid's /sandbox/public_token/create
// directly, with the client id and secret in the body.
func (c *quickstartAPI) CreateSandboxPublicToken(ctx context.Context, in *linkdv1.CreateSandboxPublicTokenRequest, _ ...grpc.CallOption) (*linkdv1.CreateSandboxPublicTokenResponse, error) {
	body, err := json.Marshal(map[string]any{
		"client_id": c.clientID, "secret": c.secret,
		"institution_id": in.GetInstitutionId(), "initial_products": quickstartProducts,
	})
	if err != nil {
		return nil, err
	}
	var out struct {
		PublicToken string `json:"public_token"`
	}
	if err := c.post(ctx, c.tokenPath, "application/json", body, &out); err != nil {
		return nil, err
	}
	return &linkdv1.CreateSandboxPublicTokenResponse{PublicToken: out.PublicToken}, nil
}

func (c *quickstartAPI) ParseRedirect(context.Context, *linkdv1.ParseRedirectRequest, ...grpc.CallOption) (*linkdv1.ParseRedirectResponse, error) {
	return nil, errNoQuickstartRoute
}

func (c *quickstartAPI) SubmitRedirect(context.Context, *linkdv1.SubmitRedirectRequest, ...grpc.CallOption) (*linkdv1.SubmitRedirectResponse, error) {
	return nil, errNoQuickstartRoute
}

var errNoQuickstartRoute = status.Error(codes.Unimplemented, "the quickstart has no route for this call")

// post sends body to u and decodes a 200 answer into out. Any other status
// comes back as a gRPC status of the same meaning (see codeOfHTTP) with
// the start of the body, so errors count by code as linkd's do.
func (c *quickstartAPI) post(ctx context.Context, u, contentType string, body []byte, out any) error {
	var header http.Header
	if contentType != "" {
		header = http.Header{"Content-Type": {contentType}}
	}
	code, b, err := post(ctx, c.http, u, header, body)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return status.Errorf(codeOfHTTP(code), "HTTP %d from %s: %.200s", code, u, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return status.Errorf(codes.Internal, "HTTP 200 from %s with a body that is not the expected JSON: %v", u, err)
	}
	return nil
}

// codeOfHTTP returns the gRPC code of an HTTP error status: the inverse of
// grpc-gateway's mapping for the statuses Plaid and the quickstart answer,
// Internal for other 5xx, Unknown for the rest.
func codeOfHTTP(s int) codes.Code {
	if c, ok := httpCodes[s]; ok {
		return c
	}
	if s >= 500 {
		return codes.Internal
	}
	return codes.Unknown
}

var httpCodes = map[int]codes.Code{
	http.StatusBadRequest:         codes.InvalidArgument,
	http.StatusUnauthorized:       codes.Unauthenticated,
	http.StatusForbidden:          codes.PermissionDenied,
	http.StatusNotFound:           codes.NotFound,
	http.StatusConflict:           codes.Aborted,
	http.StatusTooManyRequests:    codes.ResourceExhausted,
	http.StatusNotImplemented:     codes.Unimplemented,
	http.StatusBadGateway:         codes.Unavailable,
	http.StatusServiceUnavailable: codes.Unavailable,
	http.StatusGatewayTimeout:     codes.DeadlineExceeded,
}

// checkQuickstartScenarios returns an error naming the first of names the
// quickstart has no route for.
func checkQuickstartScenarios(names []string) error {
	for _, n := range names {
		if _, ok := quickstartRoutes[n]; !ok {
			return fmt.Errorf("the quickstart transport runs only create-link-token and exchange, not %q", n)
		}
	}
	return nil
}
