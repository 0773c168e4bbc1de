package main

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/linkd/linkd/server"
)

// TestLinkd_GRPCConnectionLimits reads the HTTP/2 settings the gRPC
// listener announces to a new connection: a bound on concurrent streams,
// so that a client that never reads cannot pin answers without limit
// (grpc-go announces none by default).
func TestLinkd_GRPCConnectionLimits(t *testing.T) {
	ts := MustStartServer(t)
	conn, err := net.DialTimeout("tcp", ts.GRPCAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
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
