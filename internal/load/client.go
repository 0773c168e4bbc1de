package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync/atomic"
	"time"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // so error details in REST bodies decode
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// API is the part of linkd's service the scenarios call. The generated gRPC
// client is one; restAPI speaks the same calls over REST.
type API interface {
	CreateLinkToken(context.Context, *linkdv1.CreateLinkTokenRequest, ...grpc.CallOption) (*linkdv1.CreateLinkTokenResponse, error)
	ParseRedirect(context.Context, *linkdv1.ParseRedirectRequest, ...grpc.CallOption) (*linkdv1.ParseRedirectResponse, error)
	SubmitRedirect(context.Context, *linkdv1.SubmitRedirectRequest, ...grpc.CallOption) (*linkdv1.SubmitRedirectResponse, error)
	ExchangePublicToken(context.Context, *linkdv1.ExchangePublicTokenRequest, ...grpc.CallOption) (*linkdv1.ExchangePublicTokenResponse, error)
	CreateSandboxPublicToken(context.Context, *linkdv1.CreateSandboxPublicTokenRequest, ...grpc.CallOption) (*linkdv1.CreateSandboxPublicTokenResponse, error)
}

// dialGRPC returns the generated client on conns connections (at least
// one; with one, HTTP/2 carries every worker's calls, as a gRPC client in
// an app would), sending apiKey with each call, and a function that
// closes them. Several connections take the calls in turn.
func dialGRPC(addr, apiKey string, conns int) (API, func() error, error) {
	auth := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+apiKey), method, req, reply, cc, opts...)
	}
	var pool connPool
	for range max(conns, 1) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(auth))
		if err != nil {
			pool.close()
			return nil, nil, fmt.Errorf("gRPC client for %s: %w", addr, err)
		}
		pool.conns = append(pool.conns, conn)
	}
	if len(pool.conns) == 1 {
		return linkdv1.NewLinkServiceClient(pool.conns[0]), pool.close, nil
	}
	return linkdv1.NewLinkServiceClient(&pool), pool.close, nil
}

// connPool is a grpc.ClientConnInterface that sends each call on the next
// of its connections.
type connPool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

func (p *connPool) pick() *grpc.ClientConn {
	return p.conns[(p.next.Add(1)-1)%uint64(len(p.conns))]
}

func (p *connPool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return p.pick().Invoke(ctx, method, args, reply, opts...)
}

func (p *connPool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return p.pick().NewStream(ctx, desc, method, opts...)
}

func (p *connPool) close() error {
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// restAPI calls linkd's REST API (JSON with proto field names). A non-200
// answer comes back as the gRPC status the gateway put in the body, so
// errors count by the same codes over both transports.
type restAPI struct {
	base, apiKey string
	http         *http.Client
}

// newREST returns a REST client for addr that keeps up to concurrency
// connections open (keepAliveTransport): net/http's default of 2 idle
// connections per host would make most calls dial.
func newREST(addr, apiKey string, concurrency int) (*restAPI, func() error) {
	tr := keepAliveTransport(concurrency)
	c := &restAPI{base: "http://" + addr, apiKey: apiKey, http: &http.Client{Transport: tr}}
	return c, func() error { tr.CloseIdleConnections(); return nil }
}

// keepAliveTransport returns an HTTP transport that keeps up to concurrency
// idle connections per host, so that concurrent callers reuse them.
func keepAliveTransport(concurrency int) *http.Transport {
	return &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, IdleConnTimeout: 90 * time.Second}
}

var _ API = (*restAPI)(nil)

// call posts in to path as linkd's REST clients send it (protojson, proto
// field names) and decodes a 200 answer into out with encoding/json, as
// the quickstart client decodes the quickstart's answers: out holds only
// the fields the scenarios use, and the callers check the ones that must
// be there. (Decoding the whole message with protojson cost the driver
// ~7 µs more per CreateLinkToken than the quickstart's decoding of its
// answer, CPU that the server under test shares on one machine.)
func (c *restAPI) call(ctx context.Context, path string, in proto.Message, out any) error {
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(in)
	if err != nil {
		return err
	}
	code, b, err := post(ctx, c.http, c.base+path, http.Header{"Authorization": {"Bearer " + c.apiKey}, "Content-Type": {"application/json"}}, body)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		var st spb.Status
		if err := protojson.Unmarshal(b, &st); err != nil {
			return status.Errorf(codes.Unknown, "HTTP %d with a body that is not a status: %.200s", code, b)
		}
		return status.FromProto(&st).Err()
	}
	if err := json.Unmarshal(b, out); err != nil {
		return status.Errorf(codes.Internal, "HTTP 200 from %s with a body that is not the expected JSON: %v", path, err)
	}
	return nil
}

// missing is the error of a 200 answer from path without field.
func missing(path, field string) error {
	return status.Errorf(codes.Internal, "HTTP 200 from %s without %s", path, field)
}

// redirectResult is the part of a parsed redirect the driver checks: which
// of the three redirects it was (one of them is set).
type redirectResult struct {
	Connected json.RawMessage `json:"connected"`
	Exit      json.RawMessage `json:"exit"`
	Event     json.RawMessage `json:"event"`
}

func (r redirectResult) ok() bool { return len(r.Connected)+len(r.Exit)+len(r.Event) > 0 }

// post sends body to u with header and returns the answer's status and
// body. A request that gets no whole answer returns an Unavailable status
// error, so that it counts as one.
func post(ctx context.Context, client *http.Client, u string, header http.Header, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	maps.Copy(req.Header, header)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, status.Error(codes.Unavailable, err.Error())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, status.Error(codes.Unavailable, err.Error())
	}
	return resp.StatusCode, b, nil
}

func (c *restAPI) CreateLinkToken(ctx context.Context, in *linkdv1.CreateLinkTokenRequest, _ ...grpc.CallOption) (*linkdv1.CreateLinkTokenResponse, error) {
	const path = "/v1/link/token/create"
	var out struct {
		LinkToken string `json:"link_token"`
	}
	if err := c.call(ctx, path, in, &out); err != nil {
		return nil, err
	}
	if out.LinkToken == "" {
		return nil, missing(path, "link_token")
	}
	return &linkdv1.CreateLinkTokenResponse{LinkToken: &linkdv1.LinkToken{LinkToken: out.LinkToken}}, nil
}

// ParseRedirect returns an empty redirect: no scenario reads it.
func (c *restAPI) ParseRedirect(ctx context.Context, in *linkdv1.ParseRedirectRequest, _ ...grpc.CallOption) (*linkdv1.ParseRedirectResponse, error) {
	const path = "/v1/link/redirect/parse"
	var out redirectResult
	if err := c.call(ctx, path, in, &out); err != nil {
		return nil, err
	}
	if !out.ok() {
		return nil, missing(path, "connected, exit or event")
	}
	return &linkdv1.ParseRedirectResponse{Redirect: &linkdv1.WebviewRedirect{}}, nil
}

// SubmitRedirect returns an empty response: no scenario reads it.
func (c *restAPI) SubmitRedirect(ctx context.Context, in *linkdv1.SubmitRedirectRequest, _ ...grpc.CallOption) (*linkdv1.SubmitRedirectResponse, error) {
	const path = "/v1/link/redirect/submit"
	var out redirectResult
	if err := c.call(ctx, path, in, &out); err != nil {
		return nil, err
	}
	if !out.ok() {
		return nil, missing(path, "connected, exit or event")
	}
	return &linkdv1.SubmitRedirectResponse{}, nil
}

func (c *restAPI) ExchangePublicToken(ctx context.Context, in *linkdv1.ExchangePublicTokenRequest, _ ...grpc.CallOption) (*linkdv1.ExchangePublicTokenResponse, error) {
	const path = "/v1/item/public_token/exchange"
	var out struct {
		ItemID string `json:"item_id"`
	}
	if err := c.call(ctx, path, in, &out); err != nil {
		return nil, err
	}
	if out.ItemID == "" {
		return nil, missing(path, "item_id")
	}
	return &linkdv1.ExchangePublicTokenResponse{Item: &linkdv1.Item{ItemId: out.ItemID}}, nil
}

func (c *restAPI) CreateSandboxPublicToken(ctx context.Context, in *linkdv1.CreateSandboxPublicTokenRequest, _ ...grpc.CallOption) (*linkdv1.CreateSandboxPublicTokenResponse, error) {
	const path = "/v1/sandbox/public_token/create"
	var out struct {
		PublicToken string `json:"public_token"`
	}
	if err := c.call(ctx, path, in, &out); err != nil {
		return nil, err
	}
	if out.PublicToken == "" {
		return nil, missing(path, "public_token")
	}
	return &linkdv1.CreateSandboxPublicTokenResponse{PublicToken: out.PublicToken}, nil
}
