package server

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// What one gRPC connection may hold. A client that opens streams and never
// reads their answers pins each answer in the server's send buffers, and
// one that stays connected doing nothing holds a connection for ever; these
// bound both.
const (
	// MaxConcurrentStreams bounds the calls in flight on one connection.
	// REST calls use no gRPC connection (the gateway calls in process),
	// so this is one client's concurrency: with answers bounded
	// (MaxRequestBytes in, sessions of at most 512 KiB and paged lists
	// out), a connection pins at most this many answers (measured: about
	// 100 MiB for 100 unread answers of the largest session).
	MaxConcurrentStreams = 100
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
	// MaxMetadataBytes bounds the metadata (headers) of one gRPC call:
	// an authorization token (at most 8 KiB), trace context, a request
	// id. grpc-go otherwise takes 16 MiB per call, and reads it all before
	// any interceptor can refuse the call, so a client without credentials
	// made linkd hold 16 MiB per stream, 1.6 GiB per connection at once.
	MaxMetadataBytes = 64 << 10
)

// connectionLimits returns the server options that apply the bounds above.
func connectionLimits() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.MaxHeaderListSize(MaxMetadataBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: MaxConnectionIdle,
			Time:              KeepaliveTime,
			Timeout:           KeepaliveTimeout,
		}),
	}
}

// StreamWorkers is how many goroutines the gRPC server keeps to run calls
// in, instead of starting one per call (past it, calls get their own as
// before). A fresh goroutine's stack starts small and is copied as it
// grows through the interceptors, the service and plaid-go: 10% of
// linkd's CPU under a CreateLinkToken burst went to copying stacks. A
// worker's stack stays grown from call to call (BENCHMARKS.md).
const StreamWorkers = 256
