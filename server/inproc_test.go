package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestInProcessConn_Invoke: a call reaches the handler through the
// interceptor chain with the caller's outgoing metadata as incoming
// metadata, and headers the handler sets come back.
func TestInProcessConn_Invoke(t *testing.T) {
	var conn InProcessConn
	if err := conn.Invoke(context.Background(), "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("before registration: %v, want Unavailable", err)
	}
	var sawAuth []string
	var callCtx context.Context
	chain := chainUnary(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			callCtx = ctx
			md, _ := metadata.FromIncomingContext(ctx)
			sawAuth = md.Get("authorization")
			grpc.SetHeader(ctx, metadata.Pairs("x-seen", info.FullMethod))
			return next(ctx, req)
		},
	)
	conn.register(&healthpb.Health_ServiceDesc, healthServer{}, chain)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer k")
	var header metadata.MD
	resp := &healthpb.HealthCheckResponse{}
	if err := conn.Invoke(ctx, "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{Service: "x"}, resp, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status = %v, want SERVING", resp.GetStatus())
	}
	if len(sawAuth) != 1 || sawAuth[0] != "Bearer k" {
		t.Errorf("interceptor saw authorization %q", sawAuth)
	}
	if got := header.Get("x-seen"); len(got) != 1 || got[0] != "/grpc.health.v1.Health/Check" {
		t.Errorf("header = %v", header)
	}
	// The caller's header is its own once the call returned.
	if err := grpc.SetHeader(callCtx, metadata.Pairs("x-late", "1")); err == nil || header.Get("x-late") != nil {
		t.Errorf("SetHeader after the call: %v, header %v", err, header)
	}
	if err := conn.Invoke(ctx, "/grpc.health.v1.Health/Nope", &healthpb.HealthCheckRequest{}, resp); status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
}

// healthServer answers SERVING for a service named "x".
type healthServer struct {
	healthpb.UnimplementedHealthServer
}

func (healthServer) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() != "x" {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestInvalidUTF8Field: the first string that is not UTF-8 is named by
// its path, at any depth, in lists and in maps.
func TestInvalidUTF8Field(t *testing.T) {
	bad := "\xff"
	tests := []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"Valid", &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("ok")}}, ""},
		{"ValidList", &structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("ok"), structpb.NewBoolValue(true)}}, ""},
		{"ValidNested", structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("é")}}), ""},
		{"Empty", &structpb.Value{}, ""},
		{"Field", structpb.NewStringValue(bad), "string_value"},
		{"ListElement", &structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("ok"), structpb.NewStringValue(bad)}}, "values[1].string_value"},
		{"MapValue", &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue(bad)}}, "fields.k.string_value"},
		{"MapKey", &structpb.Struct{Fields: map[string]*structpb.Value{bad: structpb.NewNullValue()}}, "fields"},
		{"Nested", structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue(bad)}}), "list_value.values[0].string_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, isBad := invalidUTF8Field(tt.msg.ProtoReflect(), "")
			if got != tt.want || isBad != (tt.want != "") {
				t.Errorf("invalidUTF8Field = %q, %v; want %q", got, isBad, tt.want)
			}
			if valid := validUTF8(tt.msg.ProtoReflect()); valid != (tt.want == "") {
				t.Errorf("validUTF8 = %v; want %v", valid, tt.want == "")
			}
		})
	}
}

// TestChainUnary: the interceptors run first outermost, each with the
// call's info, around the handler, as grpc.ChainUnaryInterceptor runs
// them; none is the handler alone.
func TestChainUnary(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		var trace []string
		var ics []grpc.UnaryServerInterceptor
		for i := range n {
			name := string(rune('a' + i))
			ics = append(ics, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
				trace = append(trace, name+info.FullMethod)
				resp, err := next(ctx, req.(string)+name)
				trace = append(trace, "/"+name)
				return resp, err
			})
		}
		handler := func(_ context.Context, req any) (any, error) {
			trace = append(trace, "handler")
			return req.(string) + "!", nil
		}
		resp, err := chainUnary(ics...)(context.Background(), "", &grpc.UnaryServerInfo{FullMethod: "/m"}, handler)
		want := map[int]string{0: "handler", 1: "a/m handler /a", 3: "a/m b/m c/m handler /c /b /a"}[n]
		if got := strings.Join(trace, " "); got != want || err != nil {
			t.Errorf("%d interceptors: %q, %v; want %q", n, got, err, want)
		}
		if wantResp := "abc"[:n] + "!"; resp != wantResp {
			t.Errorf("%d interceptors: response %q, want %q", n, resp, wantResp)
		}
	}
}
