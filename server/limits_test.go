package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// TestCallsInFlight: past the limit a new gRPC call is refused at once;
// once a call ends, calls are taken again; in-process REST calls are not
// counted against it.
func TestCallsInFlight(t *testing.T) {
	c := &callsInFlight{limit: 2}
	ok := func(context.Context, any) (any, error) { return "done", nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/linkd.v1.LinkService/GetLinkSession"}
	for range 2 { // the calls in flight, the new one among them
		c.HandleRPC(context.Background(), &stats.Begin{})
	}
	if _, err := c.unary(context.Background(), nil, info, ok); err != nil {
		t.Fatalf("at the limit: %v, want served", err)
	}
	c.HandleRPC(context.Background(), &stats.Begin{})
	if _, err := c.unary(context.Background(), nil, info, ok); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("past the limit: %v, want ResourceExhausted", err)
	}
	inproc := peer.NewContext(context.Background(), &peer.Peer{Addr: InProcessAddr{}})
	if _, err := c.unary(inproc, nil, info, ok); err != nil {
		t.Fatalf("an in-process call past the limit: %v, want served", err)
	}
	c.HandleRPC(context.Background(), &stats.End{})
	c.HandleRPC(context.Background(), &stats.End{})
	if _, err := c.unary(context.Background(), nil, info, ok); err != nil {
		t.Fatalf("after calls ended: %v, want served", err)
	}
}
