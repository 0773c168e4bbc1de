package server

import (
	"context"
	"fmt"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// InProcessConn lets the REST gateway call the gRPC services in the same
// process without a connection: a call runs the very interceptor chain
// the gRPC server runs (authentication, logging, limits, error mapping)
// and then the method's handler, with the request and response passed as
// messages rather than encoded, sent and decoded again. NewGRPCServer
// fills it in (GRPCOptions.InProcess); the zero value answers
// Unavailable until then.
type InProcessConn struct {
	mu      sync.RWMutex
	methods map[string]inprocMethod
	chain   grpc.UnaryServerInterceptor
}

// inprocMethod is one unary method and the service value that serves it.
type inprocMethod struct {
	handler grpc.MethodHandler
	impl    any
}

var _ grpc.ClientConnInterface = (*InProcessConn)(nil)

// register serves desc's unary methods with impl through chain.
func (c *InProcessConn) register(desc *grpc.ServiceDesc, impl any, chain grpc.UnaryServerInterceptor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.methods == nil {
		c.methods = map[string]inprocMethod{}
	}
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = inprocMethod{handler: m.Handler, impl: impl}
	}
	c.chain = chain
}

// Invoke implements grpc.ClientConnInterface: the caller's outgoing
// metadata becomes the handler's incoming metadata, headers and trailers
// the handler sets reach grpc.Header and grpc.Trailer call options, and
// the response is copied into reply.
func (c *InProcessConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	c.mu.RLock()
	m, ok := c.methods[method]
	chain := c.chain
	c.mu.RUnlock()
	if !ok {
		if c.methods == nil {
			return status.Error(codes.Unavailable, "linkd is not serving yet")
		}
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy already
	stream := &inprocStream{method: method}
	sctx := grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(ctx, md), stream)
	sctx = peer.NewContext(sctx, &peer.Peer{Addr: InProcessAddr{}, LocalAddr: InProcessAddr{}})
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "request of %s is not a protobuf message", method)
	}
	// What encoding would refuse on the wire is refused here too, before
	// any interceptor, as a gRPC server refuses it: a string that is not
	// UTF-8, named.
	if m := in.ProtoReflect(); !validUTF8(m) {
		field, _ := invalidUTF8Field(m, "")
		return invalidUTF8Status(field).Err()
	}
	dec := func(v any) error {
		proto.Merge(v.(proto.Message), in)
		return nil
	}
	resp, err := m.handler(m.impl, sctx, dec, chain)
	hdr, trl := stream.finish()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = hdr
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trl
		}
	}
	if err != nil {
		return err
	}
	out := reply.(proto.Message)
	proto.Reset(out)
	proto.Merge(out, resp.(proto.Message))
	return nil
}

// NewStream implements grpc.ClientConnInterface; the gateway serves no
// streaming method.
func (c *InProcessConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streams are not served in process")
}

// InProcessAddr is the peer address of a call made through an
// InProcessConn (the gRPC half of a REST call): its network is
// "inprocess".
type InProcessAddr struct{}

// Network implements net.Addr.
func (InProcessAddr) Network() string { return "inprocess" }

// String implements net.Addr.
func (InProcessAddr) String() string { return "linkd-gateway" }

// IsInProcess reports whether ctx is a call made through an
// InProcessConn.
func IsInProcess(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, in := p.Addr.(InProcessAddr)
	return in
}

// inprocStream collects the headers and trailers a handler sets.
type inprocStream struct {
	method string
	mu     sync.Mutex
	hdr    metadata.MD
	trl    metadata.MD
	done   bool
}

// errStreamDone is what setting metadata after the handler returned
// gets, as from a gRPC server stream that is done.
var errStreamDone = status.Error(codes.Internal, "transport: the stream is done")

func (s *inprocStream) Method() string { return s.method }

func (s *inprocStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errStreamDone
	}
	s.hdr = metadata.Join(s.hdr, md)
	return nil
}

func (s *inprocStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *inprocStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errStreamDone
	}
	s.trl = metadata.Join(s.trl, md)
	return nil
}

// finish ends the stream when the handler has returned and hands its
// headers and trailers over to the caller, nil for none: no later
// SetHeader can change them, so they need no copy (most calls through
// the gateway set none, and an empty copy was two maps a call).
func (s *inprocStream) finish() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	return s.hdr, s.trl
}

// chainUnary composes interceptors, the first outermost, as
// grpc.ChainUnaryInterceptor does, so that the gRPC server and
// InProcessConn run one and the same chain.
func chainUnary(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if len(interceptors) == 0 {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		// A closure for each interceptor but the outermost, which is
		// called as it is.
		next := handler
		for i := len(interceptors) - 1; i > 0; i-- {
			ic, inner := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return interceptors[0](ctx, req, info, next)
	}
}

// validUTF8 reports whether every string of m, at any depth, is UTF-8, as
// invalidUTF8Field would find, without building a field path for each
// field on the way: the check every REST call makes.
func validUTF8(m protoreflect.Message) bool {
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; ok && i < l.Len(); i++ {
				ok = validUTF8Value(fd, l.Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ok = (fd.MapKey().Kind() != protoreflect.StringKind || utf8.ValidString(k.String())) && validUTF8Value(fd.MapValue(), mv)
				return ok
			})
		default:
			ok = validUTF8Value(fd, v)
		}
		return ok
	})
	return ok
}

// validUTF8Value is validUTF8 for one value of field fd.
func validUTF8Value(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return utf8.ValidString(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return validUTF8(v.Message())
	}
	return true
}

// invalidUTF8Field returns the path (a.b[2].c) of the first string field
// of m, at any depth, that is not valid UTF-8.
func invalidUTF8Field(m protoreflect.Message, prefix string) (string, bool) {
	var path string
	var bad bool
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				at := fmt.Sprintf("%s[%d]", name, i)
				if p, b := invalidUTF8Value(fd, l.Get(i), at); b {
					path, bad = p, true
					return false
				}
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
					path, bad = name, true
					return false
				}
				if p, b := invalidUTF8Value(fd.MapValue(), mv, name+"."+k.String()); b {
					path, bad = p, true
					return false
				}
				return true
			})
			return !bad
		default:
			if p, b := invalidUTF8Value(fd, v, name); b {
				path, bad = p, true
				return false
			}
		}
		return true
	})
	return path, bad
}

// invalidUTF8Value checks one value of field fd, at path.
func invalidUTF8Value(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) (string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return path, true
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return invalidUTF8Field(v.Message(), path+".")
	}
	return "", false
}
