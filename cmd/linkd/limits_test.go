package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/linkd/linkd/server"
)

// TestLinkd_GRPCConnectionLimits reads the HTTP/2 settings the gRPC
// listener announces to a new connection: a bound on concurrent streams,
// so that a client that never reads cannot pin answers without limit
// (grpc-go announces none by default).
func TestLinkd_GRPCConnectionLimits(t *testing.T) {
	ts := MustStartServer(t)
	fr := dialHTTP2(t, ts.GRPCAddr(), 5*time.Second)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
		if !ok || v != server.MaxConcurrentStreams {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want %d", v, ok, server.MaxConcurrentStreams)
		}
		return
	}
}

// TestLinkd_GRPCMetadataLimit sends a gRPC call with 1 MiB of metadata and
// no credentials over a raw HTTP/2 connection, as a client that ignores
// the server's SETTINGS would: the stream is reset, not read whole and
// answered. grpc-go's own default takes 16 MiB of metadata per call,
// read before any interceptor can refuse it (100 streams on one
// connection: 1.6 GiB held at once, no credentials needed).
func TestLinkd_GRPCMetadataLimit(t *testing.T) {
	ts := MustStartServer(t)
	fr := dialHTTP2(t, ts.GRPCAddr(), 10*time.Second)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/linkd.v1.LinkService/ParseRedirect"},
		{":authority", ts.GRPCAddr()}, {"content-type", "application/grpc"}, {"te", "trailers"},
		{"x-junk", strings.Repeat("a", 1<<20)},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const chunk = 16 << 10 // the default SETTINGS_MAX_FRAME_SIZE
	b := block.Bytes()
	first := b[:chunk]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first}); err != nil {
		t.Fatal(err)
	}
	for b = b[chunk:]; len(b) > 0; {
		n := min(chunk, len(b))
		if err := fr.WriteContinuation(1, n == len(b), b[:n]); err != nil {
			// The server may reset the stream, or close the
			// connection, before it has read everything.
			break
		}
		b = b[n:]
	}
	// An empty request message ends the call: unary calls are read whole
	// before the interceptors run.
	fr.WriteData(1, true, make([]byte, 5))
	for {
		f, err := fr.ReadFrame()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("no answer: want the stream reset")
		} else if err != nil {
			return // the connection closed: refused too
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return
			}
		case *http2.GoAwayFrame:
			return
		case *http2.HeadersFrame:
			if f.StreamID == 1 {
				t.Fatal("a call with 1 MiB of metadata was read and answered; want the stream reset")
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		}
	}
}

// dialHTTP2 opens a raw HTTP/2 connection to addr, closed at the end of
// the test, and sends the client preface and empty SETTINGS; every read
// and write on it fails after timeout.
func dialHTTP2(t *testing.T, addr string, timeout time.Duration) *http2.Framer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr
}
