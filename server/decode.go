package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/linkd/linkd/openapi"
)

// Input the decoders refuse is the caller's mistake, and answers as one:
// INVALID_ARGUMENT (400) naming the field, not the INTERNAL (500) that
// grpc-go gives every codec failure, nor the RESOURCE_EXHAUSTED (429) of a
// gateway message over the size limit, nor the 501 grpc-gateway gives a
// method a path does not take.

// MaxRequestURIBytes caps the request line's target over REST: the longest
// id is 1 KiB, 3 KiB percent-encoded.
const MaxRequestURIBytes = 8 << 10

// invalidUTF8 is protobuf's error text for a string field that is not
// UTF-8 (its error type is internal to protobuf).
const invalidUTF8 = "contains invalid UTF-8"

// utf8Codec is the proto codec, but a request whose string field is not
// UTF-8 decodes without error and is remembered (by the request message)
// with the field, so that rejectInvalidUTF8 answers INVALID_ARGUMENT naming
// it: grpc-go turns any codec error into INTERNAL before an interceptor
// sees the call.
type utf8Codec struct {
	encoding.CodecV2
	bad *sync.Map // request message → field path
}

func newUTF8Codec() utf8Codec {
	return utf8Codec{CodecV2: encoding.GetCodecV2("proto"), bad: &sync.Map{}}
}

func (c utf8Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok || !strings.Contains(err.Error(), invalidUTF8) {
		return err
	}
	field := badUTF8Field(m.ProtoReflect().Descriptor(), data.Materialize())
	proto.Reset(m)
	c.bad.Store(m, field)
	return nil
}

// rejectInvalidUTF8 answers INVALID_ARGUMENT for a request the codec
// remembered. It must run on every unary call, so that no entry stays.
func (c utf8Codec) rejectInvalidUTF8(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if field, ok := c.bad.LoadAndDelete(req); ok {
		return nil, invalidUTF8Status(field.(string)).Err()
	}
	return next(ctx, req)
}

// invalidUTF8Status is INVALID_ARGUMENT naming field (when known).
func invalidUTF8Status(field string) *status.Status {
	if field == "" {
		return status.New(codes.InvalidArgument, "a string field is not valid UTF-8")
	}
	return badRequestStatus(field, field+" is not valid UTF-8")
}

// badUTF8Field returns the path (a.b) of the first string field of b, a
// message md in wire format, that is not UTF-8, or "" when it finds none.
func badUTF8Field(md protoreflect.MessageDescriptor, b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		var val []byte
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return ""
			}
			val, n = v, m
		} else if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(val) {
				return string(fd.Name())
			}
		case protoreflect.MessageKind:
			if sub := badUTF8Field(fd.Message(), val); sub != "" {
				return string(fd.Name()) + "." + sub
			}
		}
	}
	return ""
}

// gatewayErrors is grpc-gateway's error handler, but a request the
// gateway cannot encode because a path or query parameter is not UTF-8 is
// INVALID_ARGUMENT naming the parameter (it fails in the gateway's own
// client, before linkd, so with or without credentials), and one too large
// to forward is INVALID_ARGUMENT too, not RESOURCE_EXHAUSTED (429: retry
// later) as from gRPC.
func gatewayErrors(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if st, ok := status.FromError(err); ok {
		switch {
		case st.Code() == codes.Internal && strings.Contains(st.Message(), invalidUTF8):
			pattern, _ := runtime.HTTPPathPattern(ctx)
			err = invalidUTF8Status(badUTF8Param(pattern, r)).Err()
		case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max"):
			err = status.Errorf(codes.InvalidArgument, "request is larger than %d bytes", MaxRequestBytes)
		case st.Code() == codes.InvalidArgument && len(st.Details()) == 0:
			if field := undecodableField(st.Message()); field != "" {
				err = badRequestStatus(requestFieldPath(ctx, field), st.Message()).Err()
			}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// decodeFieldPattern finds the field a decoding error of the gateway names:
// protojson's `field url:`, `unknown field "nope"`, `duplicate field
// "url"`, the query parser's `parsing field "page_size"` and `parsing list
// "statuses"`, a path parameter's `parameter: item_id,`.
var decodeFieldPattern = regexp.MustCompile(`(?:field|list) "([A-Za-z0-9_.]{1,64})"|field ([A-Za-z0-9_.]{1,64}):|parameter: ([A-Za-z0-9_.]{1,64}),`)

// undecodableField returns the field to name in the BadRequest of msg, the
// message of a request the gateway could not decode (no RPC ran, so it
// has no details): the field it names, "body" when it names none, or ""
// when msg is not a decoding error.
func undecodableField(msg string) string {
	if m := decodeFieldPattern.FindStringSubmatch(msg); m != nil {
		// protojson names a field with a bad value by its JSON name
		// (urlLifetimeSeconds); linkd's errors use the proto name.
		return m[1] + protoName(m[2]) + m[3]
	}
	switch {
	case strings.HasPrefix(msg, "proto:"), msg == "unexpected EOF", strings.HasPrefix(msg, "invalid character"), strings.HasPrefix(msg, "json:"):
		return "body"
	}
	return ""
}

// requestFieldPath returns the path (hosted_link.url_lifetime_seconds) of
// the field named name in the request of the RPC ctx is a gateway call
// of, when exactly one field of the request or of a message inside it has
// that proto or JSON name (a duplicate is named as the body spelled it):
// protojson's errors name a field alone, while linkd's own checks name it
// by its path. Otherwise (an unknown field) it returns name.
func requestFieldPath(ctx context.Context, name string) string {
	method, ok := runtime.RPCMethod(ctx)
	if !ok || strings.Contains(name, ".") {
		return name
	}
	svc, rpc, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok || sd.Methods().ByName(protoreflect.Name(rpc)) == nil {
		return name
	}
	var found []string
	var walk func(md protoreflect.MessageDescriptor, prefix string, depth int)
	walk = func(md protoreflect.MessageDescriptor, prefix string, depth int) {
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if string(fd.Name()) == name || fd.JSONName() == name {
				found = append(found, prefix+string(fd.Name()))
			}
			// Maps are keyed by the caller's words, and well-known types
			// (timestamps) are values, not messages of linkd's.
			if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && depth < 8 &&
				!strings.HasPrefix(string(fd.Message().FullName()), "google.") {
				walk(fd.Message(), prefix+string(fd.Name())+".", depth+1)
			}
		}
	}
	walk(sd.Methods().ByName(protoreflect.Name(rpc)).Input(), "", 0)
	if len(found) != 1 {
		return name
	}
	return found[0]
}

// protoName turns a lowerCamelCase JSON name back into the snake_case
// proto field name it was made from.
func protoName(json string) string {
	var b strings.Builder
	for _, r := range json {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// badRequestStatus is INVALID_ARGUMENT with msg and a BadRequest naming
// field.
func badRequestStatus(field, msg string) *status.Status {
	st := status.New(codes.InvalidArgument, msg)
	if with, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}}); err == nil {
		return with
	}
	return st
}

// badUTF8Param names the path parameter of pattern (as /v1/items/{item_id})
// or the query parameter of r that is not UTF-8, or "".
func badUTF8Param(pattern string, r *http.Request) string {
	segs, tmpl := strings.Split(r.URL.Path, "/"), strings.Split(pattern, "/")
	if len(segs) == len(tmpl) {
		for i, t := range tmpl {
			if strings.HasPrefix(t, "{") && !utf8.ValidString(segs[i]) {
				name, _, _ := strings.Cut(strings.Trim(t, "{}"), "=")
				return name
			}
		}
	}
	for k, vs := range r.URL.Query() {
		if !utf8.ValidString(k) {
			return ""
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return k
			}
		}
	}
	return ""
}

// routeMethods maps each REST path template of the API description to the
// methods it takes, for the Allow header of a 405.
type routeMethods map[string][]string

// loadRouteMethods reads the paths of linkd's OpenAPI document. It cannot
// fail on the embedded document but a broken build; it then returns none.
func loadRouteMethods() routeMethods {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		return nil
	}
	rm := routeMethods{}
	for path, ops := range doc.Paths {
		for m := range ops {
			rm[path] = append(rm[path], strings.ToUpper(m))
		}
		slices.Sort(rm[path])
	}
	return rm
}

// allow returns the methods path takes, matching {param} segments.
func (rm routeMethods) allow(path string) []string {
	segs := strings.Split(path, "/")
	for tmpl, methods := range rm {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		match := true
		for i, t := range ts {
			if !(strings.HasPrefix(t, "{") && segs[i] != "") && t != segs[i] {
				match = false
				break
			}
		}
		if match {
			return methods
		}
	}
	return nil
}

// routingErrors answers a method a path does not take with 405 and Allow
// (grpc-gateway answers 501, as if linkd lacked the feature), and leaves
// other routing errors to grpc-gateway.
func (rm routeMethods) routingErrors(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	writeMethodNotAllowed(w, r, rm.allow(r.URL.Path))
}

// writeMethodNotAllowed answers 405 with Allow: allowed, and the gateway's
// JSON error body.
func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	b, _ := json.Marshal(fmt.Sprintf("method %s is not allowed here; allowed: %s", r.Method, strings.Join(allowed, ", ")))
	fmt.Fprintf(w, `{"code":%d,"message":%s}`, codes.Unimplemented, b)
}

// limitURI answers 414 to a request target over MaxRequestURIBytes, before
// anything decodes it.
func limitURI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.RequestURI) > MaxRequestURIBytes {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestURITooLong)
			fmt.Fprintf(w, `{"code":%d,"message":"request URI is longer than %d bytes"}`, codes.InvalidArgument, MaxRequestURIBytes)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rejectInvalidUTF8Stream is rejectInvalidUTF8 for the messages of a
// stream (health's Watch, reflection).
func (c utf8Codec) rejectInvalidUTF8Stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return next(srv, utf8Stream{ss, c})
}

type utf8Stream struct {
	grpc.ServerStream
	c utf8Codec
}

func (s utf8Stream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if field, ok := s.c.bad.LoadAndDelete(m); ok {
		return invalidUTF8Status(field.(string)).Err()
	}
	return nil
}
