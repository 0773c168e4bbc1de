package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/rs/cors"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/linkd/linkd"
	linkdv1gw "github.com/linkd/linkd/gen/gateway/linkd/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Route is an HTTP handler served beside the REST API, for what is not an
// RPC (a page, a webhook that must see its raw body).
type Route struct {
	// Pattern is an http.ServeMux pattern, e.g. "GET /link/v2/stable/link.html".
	Pattern string
	Handler http.Handler
}

// HTTPOptions configures NewHTTPHandler.
type HTTPOptions struct {
	// Routes are served beside the REST API.
	Routes []Route
	// Telemetry writes the access log and gives requests their ids; the
	// same one as NewGRPCServer's. Nil logs nothing.
	Telemetry *Telemetry
	// Wrap, when set, wraps the whole handler inside Telemetry (tracing).
	Wrap func(http.Handler) http.Handler
	// Logger receives what goes wrong outside the gateway (a body that
	// cannot be read); slog.Default when nil.
	Logger *slog.Logger
	// CORSOrigins are the browser origins (https://app.example.com) that
	// may call the REST API from a page; none (the default) sends no CORS
	// header, so browsers keep other origins out. "*" allows any origin.
	CORSOrigins []string
}

// NewHTTPHandler returns linkd's REST API: grpc-gateway calling the gRPC
// services in process through conn (filled in by NewGRPCServer), so every
// REST call passes the same interceptors as a gRPC call, without a second
// encoding and transport hop; plus GET /healthz answered by the gRPC
// health service, plus any extra routes. JSON uses the proto field names
// (snake_case, like Plaid).
func NewHTTPHandler(ctx context.Context, conn *InProcessConn, opts HTTPOptions) (http.Handler, error) {
	routes := opts.Routes
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restJSON{&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{},
		}}),
		runtime.WithHealthzEndpoint(healthpb.NewHealthClient(conn)),
		runtime.WithMiddlewares(gatewayRoute),
		runtime.WithIncomingHeaderMatcher(gatewayHeaders),
		runtime.WithOutgoingHeaderMatcher(gatewayResponseHeaders),
		runtime.WithErrorHandler(gatewayErrors),
		runtime.WithRoutingErrorHandler(loadRouteMethods().routingErrors),
		// A request does what its method says: no form-encoded POST
		// becomes a DELETE by X-HTTP-Method-Override, or a GET.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
	)
	if err := linkdv1gw.RegisterLinkServiceHandlerClient(ctx, mux, linkdv1.NewLinkServiceClient(conn)); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}
	top := http.NewServeMux()
	top.Handle("/", mux)
	allow := map[string][]string{} // the methods of each route's path
	for _, r := range routes {
		top.Handle(r.Pattern, routeLabel(r.Pattern, r.Handler))
		if method, path, ok := strings.Cut(r.Pattern, " "); ok {
			allow[path] = append(allow[path], method)
		}
	}
	// Another method on such a path would fall through to the gateway,
	// which knows no such path (404): answer it as the gateway answers
	// an RPC's path, 405 with Allow.
	for path, methods := range allow {
		slices.Sort(methods)
		top.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeMethodNotAllowed(w, r, methods)
		}))
	}
	var h http.Handler = limitURI(limitBody(log, top))
	if len(opts.CORSOrigins) > 0 {
		// Preflights are answered here, before the body limit and the
		// gateway; credentials travel in Authorization, never cookies.
		h = cors.New(cors.Options{
			AllowedOrigins: opts.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", RequestIDHeader},
			ExposedHeaders: []string{RequestIDHeader, "Grpc-Metadata-Linkd-Next-Page-Token"},
			MaxAge:         600,
		}).Handler(h)
	}
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	if opts.Telemetry != nil {
		h = opts.Telemetry.Handler(h)
	}
	return h, nil
}

// restJSON is grpc-gateway's JSONPb, but a request body that protojson
// takes whole (every well-formed request) is parsed once: JSONPb first
// scans the body with encoding/json for its first JSON value, then parses
// that value again with protojson, which cost an eighth of a REST
// ParseRedirect's CPU. Any other body (empty, several values, invalid) goes
// to JSONPb's decoder as before, so it gets the same answer.
type restJSON struct{ *runtime.JSONPb }

func (j restJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			return j.JSONPb.NewDecoder(r).Decode(v)
		}
		// The body is read into a reused buffer (at most MaxRequestBytes
		// and a little): neither decoder keeps a reference into it.
		buf := bodyBuffers.Get().(*bytes.Buffer)
		defer bodyBuffers.Put(buf)
		buf.Reset()
		_, err := buf.ReadFrom(r)
		body := buf.Bytes()
		if err == nil && j.UnmarshalOptions.Unmarshal(body, m) == nil {
			return nil
		}
		proto.Reset(m)
		derr := j.JSONPb.NewDecoder(io.MultiReader(bytes.NewReader(body), r)).Decode(v)
		if derr != nil && err == nil && strings.Contains(derr.Error(), "invalid UTF-8") {
			// protojson names no field for it; gRPC names the field
			// (invalidUTF8Status), and so does REST.
			if path := badUTF8JSONPath(body); fieldPathPattern.MatchString(path) {
				return fmt.Errorf("field %q is not valid UTF-8", path)
			}
		}
		if derr == nil && err == nil && trailingData(body) {
			// JSONPb took the first value and ignored the rest: a body
			// of two objects, or one with garbage after it, is not the
			// request its sender meant.
			proto.Reset(m)
			return errTrailingData
		}
		return derr
	})
}

// errTrailingData is the answer to a body with more after its first JSON
// value (its "json:" names the body as the field, undecodableField).
var errTrailingData = errors.New("json: the request body has data after its JSON value")

// trailingData reports whether body holds a well-formed JSON value followed
// by anything but white space.
func trailingData(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var first json.RawMessage
	if dec.Decode(&first) != nil {
		return false
	}
	return len(bytes.TrimSpace(body[dec.InputOffset():])) > 0
}

// fieldPathPattern is a field path undecodableField can name.
var fieldPathPattern = regexp.MustCompile(`^[A-Za-z0-9_.]{1,64}$`)

// badUTF8JSONPath returns the path (hosted_link.completion_redirect_uri:
// object keys, in proto names, lists by their field alone) of the string
// in the JSON body that holds its first byte that is not UTF-8, or "" when
// that byte is not inside a string of an object member.
func badUTF8JSONPath(body []byte) string {
	bad := 0
	for bad < len(body) {
		r, size := utf8.DecodeRune(body[bad:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		bad += size
	}
	// One frame per open object or array: an object's key, once read.
	type frame struct {
		object  bool
		key     string
		wantKey bool
	}
	var stack []frame
	inString, escaped, isKey := false, false, false
	start := 0
	for i := 0; i < bad; i++ {
		c := body[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if isKey {
					stack[len(stack)-1].key = protoName(string(body[start:i]))
					stack[len(stack)-1].wantKey = false
				}
			}
			continue
		}
		switch c {
		case '"':
			inString, start = true, i+1
			isKey = len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey
		case '{':
			stack = append(stack, frame{object: true, wantKey: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].wantKey = true
			}
		}
	}
	if !inString || isKey || bad == len(body) {
		return ""
	}
	var path []string
	for _, f := range stack {
		if f.object {
			path = append(path, f.key)
		}
	}
	return strings.Join(path, ".")
}

// bodyBuffers holds buffers for request bodies being decoded.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Marshal is JSONPb's Marshal without its copy of a message's JSON into a
// second buffer: for a message JSONPb returns exactly what protojson
// gives, so that is returned as it is.
func (j restJSON) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return j.MarshalOptions.Marshal(m)
	}
	return j.JSONPb.Marshal(v)
}

// limitBody refuses bodies over MaxRequestBytes: at once when the length is
// declared, and while reading when it is not.
func limitBody(log *slog.Logger, next http.Handler) http.Handler {
	tooLarge := func(w http.ResponseWriter, r *http.Request) {
		writeHTTPError(w, r, log, http.StatusRequestEntityTooLarge,
			linkd.InvalidField("body", "request body is larger than %d bytes", MaxRequestBytes))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBytes {
			tooLarge(w, r)
			return
		}
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			// A body of unknown length (chunked) is read here, up to the
			// limit, so that one too large gets the same 413 as a declared
			// one rather than a decoding error from deep in the gateway.
			b, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
			if err != nil {
				writeHTTPError(w, r, log, 0, linkd.InvalidField("body", "cannot read the request body"))
				return
			}
			if len(b) > MaxRequestBytes {
				tooLarge(w, r)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		next.ServeHTTP(w, r)
	})
}
