// Package client is linkd's Go client: a gRPC connection to linkd with the
// caller's credential on every call, a retry policy for the calls that are
// safe to repeat, and helpers that read linkd's error details.
//
//	c, err := client.Dial("linkd.internal:50051", client.Options{APIKey: key, TLS: &tls.Config{}})
//	if err != nil { ... }
//	defer c.Close()
//	resp, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1"})
//	if itemID, ok := client.IsDuplicateItem(err); ok { ... }
//
// It imports the generated messages and gRPC stubs, never grpc-gateway.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Options configure Dial. Exactly one of APIKey and UserToken is set.
type Options struct {
	// APIKey is a service's key from linkd's LINKD_API_KEYS, sent as
	// "authorization: Bearer <key>" on every call.
	APIKey string
	// UserToken returns an end user's JWT for each call, so a refreshed
	// token is picked up without dialing again. An error fails the call.
	UserToken func(ctx context.Context) (string, error)

	// TLS configures TLS to linkd. Nil with Insecure unset is an error:
	// a credential never travels in plaintext by accident.
	TLS *tls.Config
	// Insecure dials without TLS, for linkd on loopback or behind a
	// TLS-terminating sidecar. The credential is then sent in plaintext.
	Insecure bool

	// DialOptions are added after the client's own (interceptors, a
	// custom dialer, ...).
	DialOptions []grpc.DialOption
}

// Client is a connection to linkd: the generated LinkServiceClient, and
// Close.
type Client struct {
	linkdv1.LinkServiceClient
	conn *grpc.ClientConn
}

// Dial returns a Client for linkd's gRPC listener at target (a gRPC target:
// "host:port", "dns:///host:port"). It does not wait for a connection:
// the first call connects. It returns an error for inconsistent Options or
// a target gRPC cannot parse.
func Dial(target string, opts Options) (*Client, error) {
	if (opts.APIKey == "") == (opts.UserToken == nil) {
		return nil, errors.New("linkd client: set exactly one of APIKey and UserToken")
	}
	if opts.TLS == nil && !opts.Insecure {
		return nil, errors.New("linkd client: set TLS, or Insecure to send the credential in plaintext")
	}
	transport := insecure.NewCredentials()
	if opts.TLS != nil {
		transport = credentials.NewTLS(opts.TLS)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(bearer{apiKey: opts.APIKey, userToken: opts.UserToken, secure: opts.TLS != nil}),
		grpc.WithDefaultServiceConfig(ServiceConfig()),
	}
	conn, err := grpc.NewClient(target, append(dialOpts, opts.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("linkd client: %w", err)
	}
	return &Client{LinkServiceClient: linkdv1.NewLinkServiceClient(conn), conn: conn}, nil
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the underlying connection, e.g. for the gRPC health client.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// bearer sends "authorization: Bearer <credential>" with every call.
type bearer struct {
	apiKey    string
	userToken func(context.Context) (string, error)
	secure    bool
}

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	cred := b.apiKey
	if b.userToken != nil {
		var err error
		if cred, err = b.userToken(ctx); err != nil {
			return nil, fmt.Errorf("linkd client: user token: %w", err)
		}
		if cred == "" {
			return nil, errors.New("linkd client: user token is empty")
		}
	}
	return map[string]string{"authorization": "Bearer " + cred}, nil
}

// RequireTransportSecurity is false only when the caller chose Insecure.
func (b bearer) RequireTransportSecurity() bool { return b.secure }

// IdempotentMethods are the LinkService methods the client retries on
// UNAVAILABLE: reads, the pure parse, and the calls linkd itself makes
// idempotent (a redirect or public token submitted again is applied once
// and answers the same). Creating link tokens or sandbox tokens, removing
// Items and firing sandbox webhooks are not retried: a second attempt
// creates or fires again, or answers differently.
var IdempotentMethods = []string{
	"GetItem",
	"ListItems",
	"GetLinkSession",
	"GetLinkConversion",
	"GetLinkToken",
	"ParseRedirect",
	"ResumeOAuth",
	"SubmitRedirect",
	"ExchangePublicToken",
	// Erasure resumes where it stopped; a retry after an attempt that
	// completed answers zero counts.
	"DeleteUserData",
}

// ServiceConfig returns the gRPC service config Dial uses: up to 4 attempts
// of an idempotent method on UNAVAILABLE, backing off from 100 ms to 2 s,
// within the call's deadline.
func ServiceConfig() string {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	var names []name
	for _, m := range IdempotentMethods {
		names = append(names, name{Service: linkdv1.LinkService_ServiceDesc.ServiceName, Method: m})
	}
	cfg := map[string]any{
		"methodConfig": []any{map[string]any{
			"name": names,
			"retryPolicy": map[string]any{
				"maxAttempts":          4,
				"initialBackoff":       "0.1s",
				"maxBackoff":           "2s",
				"backoffMultiplier":    2,
				"retryableStatusCodes": []string{"UNAVAILABLE"},
			},
		}},
	}
	b, _ := json.Marshal(cfg) // cannot fail: only strings, numbers and slices
	return string(b)
}
