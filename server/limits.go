package server

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// What one gRPC connection may hold. A client that opens streams and never
// reads their answers pins each answer in the server's send buffers, and
// one that stays connected doing nothing holds a connection for ever; these
// bound both.
const (
	// MaxConcurrentStreams bounds the calls in flight on one connection.
	// REST calls do not use a gRPC connection (the gateway calls in
	// process), so this is one client's concurrency: with answers bounded
	// (MaxRequestBytes in, sessions of at most 512 KiB and paged lists
	// out), a connection pins at most this many answers.
	MaxConcurrentStreams = 100
	// MaxCallsInFlight bounds the gRPC calls in flight across all
	// connections, counted from a call's start until its answer has left
	// (an answer a client does not read stays in flight): past it, a new
	// call is refused at once with RESOURCE_EXHAUSTED (a few bytes), so
	// clients that never read cannot pin more than this many answers
	// however many connections they open. Far above what linkd serves
	// concurrently (its load benchmark runs 64 callers).
	MaxCallsInFlight = 512
	// KeepaliveMinTime is the most often a client may ping; one pinging
	// more often is sent GOAWAY (too_many_pings), as pings cost the server.
	KeepaliveMinTime = 10 * time.Second
	// KeepaliveTime is how long a quiet connection goes before the server
	// pings it, and KeepaliveTimeout how long it waits for the answer
	// before closing it: a peer that stopped reading never answers.
	KeepaliveTime    = time.Minute
	KeepaliveTimeout = 20 * time.Second
	// MaxConnectionIdle closes a connection with no call for this long
	// (GOAWAY: a client reconnects when it needs to).
	MaxConnectionIdle = 15 * time.Minute
)

// callsInFlight counts the gRPC calls from their start until their end
// (stats.Begin to stats.End: the end comes once the answer is sent or the
// stream dies), for MaxCallsInFlight.
type callsInFlight struct {
	n     atomic.Int64
	limit int64
}

// TagRPC implements stats.Handler.
func (c *callsInFlight) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler: it counts Begin and End.
func (c *callsInFlight) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.Begin:
		c.n.Add(1)
	case *stats.End:
		c.n.Add(-1)
	}
}

// TagConn implements stats.Handler.
func (c *callsInFlight) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

// HandleConn implements stats.Handler.
func (c *callsInFlight) HandleConn(context.Context, stats.ConnStats) {}

// unary refuses a gRPC call (not an in-process REST call, which holds no
// gRPC send buffer) while more than the limit are in flight, counting
// itself.
func (c *callsInFlight) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if !IsInProcess(ctx) && c.n.Load() > c.limit {
		return nil, status.Errorf(codes.ResourceExhausted, "linkd has %d calls in flight, the most it holds; retry shortly", c.limit)
	}
	return next(ctx, req)
}

// connectionLimits returns the server options that apply the bounds above.
func connectionLimits(inFlight *callsInFlight) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.StatsHandler(inFlight),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: MaxConnectionIdle,
			Time:              KeepaliveTime,
			Timeout:           KeepaliveTimeout,
		}),
	}
}
