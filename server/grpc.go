package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// MaxRequestBytes caps a request body, over gRPC and over REST.
const MaxRequestBytes = 64 << 10

// openMethodPrefixes are the services that need no API key: health checks
// and reflection, which reveal nothing about users.
var openMethodPrefixes = []string{
	"/" + healthpb.Health_ServiceDesc.ServiceName + "/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// GRPCOptions configures NewGRPCServer.
type GRPCOptions struct {
	// APIKeys are the bearer keys accepted; at least one is required.
	APIKeys []string
	// Logger receives one line per call; never a token.
	Logger *slog.Logger
}

// NewGRPCServer returns a gRPC server serving svc, the health service and
// reflection, with authentication, logging, panic recovery and error
// mapping in interceptors, so REST (through the gateway) gets them too. It
// returns an error when no API key is configured.
func NewGRPCServer(svc linkdv1.LinkServiceServer, opts GRPCOptions) (*grpc.Server, *health.Server, error) {
	if len(opts.APIKeys) == 0 {
		return nil, nil, fmt.Errorf("no API key configured")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	auth := newKeyAuth(opts.APIKeys)
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.ChainUnaryInterceptor(
			logUnary(log),
			recoverUnary(log),
			authUnary(auth),
			errorUnary(log),
		),
		grpc.ChainStreamInterceptor(authStream(auth)),
	)
	linkdv1.RegisterLinkServiceServer(srv, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus(linkdv1.LinkService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(srv)
	return srv, hs, nil
}

// keyAuth checks bearer API keys in constant time. It keeps only the keys'
// hashes, so comparing takes the same time whatever the presented length.
type keyAuth struct{ hashes [][sha256.Size]byte }

func newKeyAuth(keys []string) *keyAuth {
	a := &keyAuth{}
	for _, k := range keys {
		a.hashes = append(a.hashes, sha256.Sum256([]byte(k)))
	}
	return a
}

// check returns Unauthenticated unless ctx carries "authorization: Bearer
// <key>" for a configured key, or the method needs no key.
func (a *keyAuth) check(ctx context.Context, method string) error {
	for _, p := range openMethodPrefixes {
		if strings.HasPrefix(method, p) {
			return nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, "authorization: Bearer <API key> is required")
	}
	scheme, key, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return status.Error(codes.Unauthenticated, "authorization must be: Bearer <API key>")
	}
	got := sha256.Sum256([]byte(key))
	match := 0
	for _, h := range a.hashes {
		match |= subtle.ConstantTimeCompare(got[:], h[:])
	}
	if match != 1 {
		return status.Error(codes.Unauthenticated, "API key not accepted")
	}
	return nil
}

func authUnary(a *keyAuth) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if err := a.check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func authStream(a *keyAuth) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if err := a.check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return next(srv, ss)
	}
}

// errorUnary maps linkd errors to gRPC statuses once, for every method.
func errorUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, toStatus(ctx, log, info.FullMethod, err)
		}
		return resp, nil
	}
}

// recoverUnary turns a handler panic into Internal, logging the stack.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return next(ctx, req)
	}
}

// logUnary logs each call's method, code and duration; never its payload.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		code := status.Code(err)
		level := slog.LevelInfo
		if code == codes.Internal || code == codes.Unknown {
			level = slog.LevelError
		}
		log.Log(ctx, level, "rpc", "method", info.FullMethod, "code", code.String(), "duration", time.Since(start))
		return resp, err
	}
}
