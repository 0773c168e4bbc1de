package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	linkdv1gw "github.com/linkd/linkd/gen/gateway/linkd/v1"
)

// Route is an HTTP handler served beside the REST API, for what is not an
// RPC (a page, a webhook that must see its raw body).
type Route struct {
	// Pattern is an http.ServeMux pattern, e.g. "GET /link/v2/stable/link.html".
	Pattern string
	Handler http.Handler
}

// NewHTTPHandler returns linkd's REST API: grpc-gateway dialing the gRPC
// server through gateway (serve gRPC on it too), so every REST call passes
// the same interceptors, plus GET /healthz answered by the gRPC health
// service, plus any extra routes.
// JSON uses the proto field names (snake_case, like Plaid). The connection
// closes when ctx ends.
func NewHTTPHandler(ctx context.Context, gateway *GatewayListener, routes ...Route) (http.Handler, error) {
	conn, err := grpc.NewClient("passthrough:///linkd-gateway", grpc.WithContextDialer(gateway.dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial gRPC for the gateway: %w", err)
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{},
		}),
		runtime.WithHealthzEndpoint(healthpb.NewHealthClient(conn)),
		runtime.WithErrorHandler(gatewayErrors),
		runtime.WithRoutingErrorHandler(loadRouteMethods().routingErrors),
	)
	if err := linkdv1gw.RegisterLinkServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}
	if len(routes) == 0 {
		return limitURI(limitBody(mux)), nil
	}
	top := http.NewServeMux()
	top.Handle("/", mux)
	for _, r := range routes {
		top.Handle(r.Pattern, r.Handler)
	}
	return limitURI(limitBody(top)), nil
}

// limitBody refuses bodies over MaxRequestBytes: at once when the length is
// declared, and while reading when it is not.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBytes {
			tooLarge(w)
			return
		}
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			// A body of unknown length (chunked) is read here, up to the
			// limit, so that one too large gets the same 413 as a declared
			// one rather than a decoding error from deep in the gateway.
			b, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"code":3,"message":"cannot read the request body"}`)
				return
			}
			if len(b) > MaxRequestBytes {
				tooLarge(w)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		next.ServeHTTP(w, r)
	})
}

// tooLarge answers 413 in the gateway's error shape.
func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, `{"code":3,"message":"request body is larger than %d bytes"}`, MaxRequestBytes)
}
