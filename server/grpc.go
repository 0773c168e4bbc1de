package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// MaxRequestBytes caps a request body, over gRPC and over REST.
const MaxRequestBytes = 64 << 10

// openMethodPrefixes are the services that need no credential: health checks
// and reflection, which reveal nothing about users.
var openMethodPrefixes = []string{
	"/" + healthpb.Health_ServiceDesc.ServiceName + "/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// GRPCOptions configures NewGRPCServer.
type GRPCOptions struct {
	// APIKeys are the bearer keys services present; at least one is
	// required. A service may act for any user.
	APIKeys []string
	// Users verifies the bearer tokens end users present; nil accepts API
	// keys only. A user acts only for itself (see authorize.go).
	Users linkd.UserTokenVerifier
	// Logger receives one line per call; never a token.
	Logger *slog.Logger
	// TLS, when set, is required of every connection (see
	// LoadTLSConfig); the REST gateway calls in process, past it.
	TLS *tls.Config
	// InProcess, when set, is filled in to call the services in process
	// through the same interceptors, for the REST gateway.
	InProcess *InProcessConn
	// UserRateLimit bounds each end user's calls of the methods that call
	// Plaid; zero PerSecond turns the limit off.
	UserRateLimit RateLimit
	// Now is the clock of the rate limits; time.Now when nil.
	Now func() time.Time
	// Telemetry writes the access log (one line per call) and gives calls
	// their request ids; one logging to Logger when nil. Share it with
	// NewHTTPHandler.
	Telemetry *Telemetry
	// HealthWatchers, when set, ends health Watch streams at shutdown.
	HealthWatchers *HealthWatchers
	// Unary and Stream interceptors run outermost, before request ids and
	// logging (metrics, which must see every call).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// ServerOptions are added as they are (a tracing stats handler).
	ServerOptions []grpc.ServerOption
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
	auth := newAuthenticator(opts.APIKeys, opts.Users, log)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var limiter *userLimiter
	if opts.UserRateLimit.PerSecond > 0 {
		limiter = newUserLimiter(opts.UserRateLimit, opts.Now)
	}
	var serverOpts []grpc.ServerOption
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	tel := opts.Telemetry
	if tel == nil {
		tel = &Telemetry{Logger: log}
	}
	codec := newUTF8Codec()
	serverOpts = append(serverOpts, connectionLimits()...)
	serverOpts = append(serverOpts, grpc.NumStreamWorkers(StreamWorkers))
	// One chain for gRPC and for the REST gateway's in-process calls.
	chain := chainUnary(append(slices.Clone(opts.Unary),
		tel.unary,
		recoverUnary(log),
		codec.rejectInvalidUTF8,
		authUnary(auth),
		errorUnary(log),
		rateLimitUnary(limiter),
	)...)
	stream := append(slices.Clone(opts.Stream), opts.HealthWatchers.stream, codec.rejectInvalidUTF8Stream, authStream(auth))
	serverOpts = append(serverOpts, opts.ServerOptions...)
	srv := grpc.NewServer(append(serverOpts,
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.ForceServerCodecV2(codec),
		// Stop waits for running handlers too, so none can start storing an
		// exchanged Item after shutdown closed the store.
		grpc.WaitForHandlers(true),
		grpc.UnaryInterceptor(chain),
		grpc.ChainStreamInterceptor(stream...),
	)...)
	linkdv1.RegisterLinkServiceServer(srv, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus(linkdv1.LinkService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(srv)
	if opts.InProcess != nil {
		opts.InProcess.register(&linkdv1.LinkService_ServiceDesc, svc, chain)
		opts.InProcess.register(&healthpb.Health_ServiceDesc, hs, chain)
	}
	return srv, hs, nil
}

// authenticator finds the Caller of each call: a service presenting an API
// key, or an end user presenting a token users verifies. It keeps only the
// keys' hashes, so comparing takes the same time whatever the presented
// length.
type authenticator struct {
	hashes [][sha256.Size]byte
	users  linkd.UserTokenVerifier // nil: API keys only
	log    *slog.Logger
}

func newAuthenticator(keys []string, users linkd.UserTokenVerifier, log *slog.Logger) *authenticator {
	a := &authenticator{users: users, log: log}
	for _, k := range keys {
		a.hashes = append(a.hashes, sha256.Sum256([]byte(k)))
	}
	return a
}

// authenticate returns ctx carrying the Caller, for "authorization: Bearer
// <API key or user token>". Open methods need neither and get no Caller. It
// returns Unauthenticated for a missing or refused credential (never
// quoting it), PermissionDenied when a user calls a method that is for
// services only, and Unavailable when a user token cannot be checked now.
func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	for _, p := range openMethodPrefixes {
		if strings.HasPrefix(method, p) {
			return ctx, nil
		}
	}
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(vals) != 1 {
		return nil, status.Error(codes.Unauthenticated, "authorization: Bearer <API key or user token> is required")
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return nil, status.Error(codes.Unauthenticated, "authorization must be: Bearer <API key or user token>")
	}
	got := sha256.Sum256([]byte(cred))
	match := 0
	for _, h := range a.hashes {
		match |= subtle.ConstantTimeCompare(got[:], h[:])
	}
	if match == 1 {
		return linkd.WithCaller(ctx, linkd.Caller{Service: true}), nil
	}
	if a.users == nil || strings.Count(cred, ".") != 2 {
		return nil, status.Error(codes.Unauthenticated, "API key not accepted")
	}
	userID, err := a.users.VerifyUserToken(ctx, cred)
	if err != nil {
		return nil, toStatus(ctx, a.log, method, err)
	}
	if !userMayCall(method) {
		return nil, status.Error(codes.PermissionDenied, "this method is for services (API keys) only")
	}
	return linkd.WithCaller(ctx, linkd.Caller{UserID: userID}), nil
}

func authUnary(a *authenticator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// authStream authenticates streams. linkd serves none of its own; the open
// ones (health watch, reflection) pass, and anything else needs a Caller.
func authStream(a *authenticator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if _, err := a.authenticate(ss.Context(), info.FullMethod); err != nil {
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
