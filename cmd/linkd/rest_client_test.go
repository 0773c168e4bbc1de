package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // so error details decode
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// restClient implements linkdv1.LinkServiceClient over linkd's REST API, so
// the same assertions run over both transports. HTTP errors come back as
// the gRPC status the gateway encoded in the body.
type restClient struct {
	base string
	key  string
	// http sends the requests; http.DefaultClient when nil.
	http *http.Client
}

var _ linkdv1.LinkServiceClient = (*restClient)(nil)

// call sends body (nil for none) as JSON and decodes the response into out.
func (c *restClient) call(ctx context.Context, method, path string, body, out proto.Message) error {
	_, err := c.callHeader(ctx, method, path, body, out)
	return err
}

// callHeader is call, returning the response's header too.
func (c *restClient) callHeader(ctx context.Context, method, path string, body, out proto.Message) (http.Header, error) {
	var r io.Reader
	if body != nil {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	hc := c.http
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var st spb.Status
		if err := protojson.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("HTTP %d with a body that is not a status: %s", resp.StatusCode, b)
		}
		return nil, status.FromProto(&st).Err()
	}
	return resp.Header, protojson.Unmarshal(b, out)
}

func (c *restClient) CreateLinkToken(ctx context.Context, in *linkdv1.CreateLinkTokenRequest, _ ...grpc.CallOption) (*linkdv1.CreateLinkTokenResponse, error) {
	out := &linkdv1.LinkToken{}
	if err := c.call(ctx, http.MethodPost, "/v1/link/token/create", in, out); err != nil {
		return nil, err
	}
	return &linkdv1.CreateLinkTokenResponse{LinkToken: out}, nil
}

func (c *restClient) ParseRedirect(ctx context.Context, in *linkdv1.ParseRedirectRequest, _ ...grpc.CallOption) (*linkdv1.ParseRedirectResponse, error) {
	out := &linkdv1.WebviewRedirect{}
	if err := c.call(ctx, http.MethodPost, "/v1/link/redirect/parse", in, out); err != nil {
		return nil, err
	}
	return &linkdv1.ParseRedirectResponse{Redirect: out}, nil
}

func (c *restClient) SubmitRedirect(ctx context.Context, in *linkdv1.SubmitRedirectRequest, _ ...grpc.CallOption) (*linkdv1.SubmitRedirectResponse, error) {
	out := &linkdv1.SubmitRedirectResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/link/redirect/submit", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) ExchangePublicToken(ctx context.Context, in *linkdv1.ExchangePublicTokenRequest, _ ...grpc.CallOption) (*linkdv1.ExchangePublicTokenResponse, error) {
	out := &linkdv1.Item{}
	if err := c.call(ctx, http.MethodPost, "/v1/item/public_token/exchange", in, out); err != nil {
		return nil, err
	}
	return &linkdv1.ExchangePublicTokenResponse{Item: out}, nil
}

func (c *restClient) GetItem(ctx context.Context, in *linkdv1.GetItemRequest, _ ...grpc.CallOption) (*linkdv1.GetItemResponse, error) {
	out := &linkdv1.Item{}
	if err := c.call(ctx, http.MethodGet, "/v1/items/"+url.PathEscape(in.GetItemId()), nil, out); err != nil {
		return nil, err
	}
	return &linkdv1.GetItemResponse{Item: out}, nil
}

func (c *restClient) ListItems(ctx context.Context, in *linkdv1.ListItemsRequest, _ ...grpc.CallOption) (*linkdv1.ListItemsResponse, error) {
	out := &linkdv1.ListItemsResponse{}
	q := url.Values{}
	for _, st := range in.GetStatuses() {
		q.Add("statuses", st.String())
	}
	if in.GetPageSize() != 0 {
		q.Set("page_size", fmt.Sprint(in.GetPageSize()))
	}
	if in.GetPageToken() != "" {
		q.Set("page_token", in.GetPageToken())
	}
	path := "/v1/users/" + url.PathEscape(in.GetClientUserId()) + "/items"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := c.call(ctx, http.MethodGet, path, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) RemoveItem(ctx context.Context, in *linkdv1.RemoveItemRequest, _ ...grpc.CallOption) (*linkdv1.RemoveItemResponse, error) {
	out := &linkdv1.RemoveItemResponse{}
	if err := c.call(ctx, http.MethodDelete, "/v1/items/"+url.PathEscape(in.GetItemId()), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) GetLinkSession(ctx context.Context, in *linkdv1.GetLinkSessionRequest, _ ...grpc.CallOption) (*linkdv1.GetLinkSessionResponse, error) {
	out := &linkdv1.LinkSession{}
	q := url.Values{}
	if in.GetPageSize() != 0 {
		q.Set("page_size", fmt.Sprint(in.GetPageSize()))
	}
	if in.GetPageToken() != "" {
		q.Set("page_token", in.GetPageToken())
	}
	path := "/v1/link/sessions/" + url.PathEscape(in.GetLinkSessionId())
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	h, err := c.callHeader(ctx, http.MethodGet, path, nil, out)
	if err != nil {
		return nil, err
	}
	return &linkdv1.GetLinkSessionResponse{Session: out, NextPageToken: h.Get("Grpc-Metadata-Linkd-Next-Page-Token")}, nil
}

func (c *restClient) CreateSandboxPublicToken(ctx context.Context, in *linkdv1.CreateSandboxPublicTokenRequest, _ ...grpc.CallOption) (*linkdv1.CreateSandboxPublicTokenResponse, error) {
	out := &linkdv1.CreateSandboxPublicTokenResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/sandbox/public_token/create", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) ResumeOAuth(ctx context.Context, in *linkdv1.ResumeOAuthRequest, _ ...grpc.CallOption) (*linkdv1.ResumeOAuthResponse, error) {
	out := &linkdv1.ResumeOAuthResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/link/oauth/resume", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) ResetSandboxItemLogin(ctx context.Context, in *linkdv1.ResetSandboxItemLoginRequest, _ ...grpc.CallOption) (*linkdv1.ResetSandboxItemLoginResponse, error) {
	out := &linkdv1.ResetSandboxItemLoginResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/sandbox/item/reset_login", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) FireSandboxWebhook(ctx context.Context, in *linkdv1.FireSandboxWebhookRequest, _ ...grpc.CallOption) (*linkdv1.FireSandboxWebhookResponse, error) {
	out := &linkdv1.FireSandboxWebhookResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/sandbox/item/fire_webhook", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) DeleteUserData(ctx context.Context, in *linkdv1.DeleteUserDataRequest, _ ...grpc.CallOption) (*linkdv1.DeleteUserDataResponse, error) {
	out := &linkdv1.DeleteUserDataResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(in.GetClientUserId())+"/delete", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) GetLinkConversion(ctx context.Context, in *linkdv1.GetLinkConversionRequest, _ ...grpc.CallOption) (*linkdv1.GetLinkConversionResponse, error) {
	q := url.Values{}
	if in.GetSince() != nil {
		q.Set("since", in.GetSince().AsTime().Format(time.RFC3339Nano))
	}
	if in.GetUntil() != nil {
		q.Set("until", in.GetUntil().AsTime().Format(time.RFC3339Nano))
	}
	out := &linkdv1.GetLinkConversionResponse{}
	if err := c.call(ctx, http.MethodGet, "/v1/link/conversion?"+q.Encode(), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) GetLinkToken(ctx context.Context, in *linkdv1.GetLinkTokenRequest, _ ...grpc.CallOption) (*linkdv1.GetLinkTokenResponse, error) {
	out := &linkdv1.GetLinkTokenResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/link/token/get", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) SetSandboxVerificationStatus(ctx context.Context, in *linkdv1.SetSandboxVerificationStatusRequest, _ ...grpc.CallOption) (*linkdv1.SetSandboxVerificationStatusResponse, error) {
	out := &linkdv1.SetSandboxVerificationStatusResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/sandbox/item/set_verification_status", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) SetEmulatorItemState(ctx context.Context, in *linkdv1.SetEmulatorItemStateRequest, _ ...grpc.CallOption) (*linkdv1.SetEmulatorItemStateResponse, error) {
	out := &linkdv1.SetEmulatorItemStateResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/emulator/item/state", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *restClient) CompleteSandboxLinkSession(ctx context.Context, in *linkdv1.CompleteSandboxLinkSessionRequest, _ ...grpc.CallOption) (*linkdv1.CompleteSandboxLinkSessionResponse, error) {
	out := &linkdv1.CompleteSandboxLinkSessionResponse{}
	if err := c.call(ctx, http.MethodPost, "/v1/sandbox/link/session/complete", in, out); err != nil {
		return nil, err
	}
	return out, nil
}
