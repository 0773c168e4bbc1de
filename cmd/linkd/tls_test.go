package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/server/tlstest"
)

// tlsEnv writes a server certificate from serverCA, and clientCA's
// certificate when it is not nil, and returns linkd's TLS environment.
func tlsEnv(t *testing.T, serverCA, clientCA *tlstest.CA) []string {
	t.Helper()
	dir := t.TempDir()
	_, certPEM, keyPEM := serverCA.MustIssue(t, "linkd", x509.ExtKeyUsageServerAuth)
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	env := []string{"LINKD_TLS_CERT=" + write("cert.pem", certPEM), "LINKD_TLS_KEY=" + write("key.pem", keyPEM)}
	if clientCA != nil {
		env = append(env, "LINKD_TLS_CLIENT_CA="+write("client-ca.pem", clientCA.PEM))
	}
	return env
}

// tlsClients returns a gRPC and a REST client of ts over TLS trusting ca,
// presenting cert when it is not nil, each sending the API key.
func tlsClients(t *testing.T, ts *testServer, ca *tlstest.CA, cert *tls.Certificate) (linkdv1.LinkServiceClient, linkdv1.LinkServiceClient) {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoke(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+ts.APIKey), method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return linkdv1.NewLinkServiceClient(conn), &restClient{base: "https://" + ts.HTTPAddr(), key: ts.APIKey, http: hc}
}

// linkWorks reports the error of a CreateLinkToken and a ListItems through c.
func linkWorks(c linkdv1.LinkServiceClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "user-1"}); err != nil {
		return err
	}
	_, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-1"})
	return err
}

// TestLinkd_TLS: with a certificate configured, gRPC and REST are served
// over TLS only (the gateway's hop to gRPC included), and /healthz too.
func TestLinkd_TLS(t *testing.T) {
	ca := tlstest.MustCA(t, "server CA")
	ts := MustStartServer(t, tlsEnv(t, ca, nil)...)
	g, rest := tlsClients(t, ts, ca, nil)
	if err := linkWorks(g); err != nil {
		t.Errorf("gRPC over TLS: %v", err)
	}
	if err := linkWorks(rest); err != nil {
		t.Errorf("REST over TLS: %v", err)
	}
	if err := linkWorks(ts.GRPC(t)); err == nil {
		t.Error("plaintext gRPC was served")
	}
	if resp, err := http.Get("http://" + ts.HTTPAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plaintext HTTP was served")
		}
	}
	hc := rest.(*restClient).http
	resp, err := hc.Get("https://" + ts.HTTPAddr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz over TLS = %v, %v", resp, err)
	}
	if err == nil {
		resp.Body.Close()
	}
}

// TestLinkd_MutualTLS: with a client CA configured, a client without a
// certificate, or with one from another CA, is refused on both listeners;
// one with a certificate from the client CA is served over gRPC and REST.
func TestLinkd_MutualTLS(t *testing.T) {
	serverCA, clientCA, otherCA := tlstest.MustCA(t, "server CA"), tlstest.MustCA(t, "client CA"), tlstest.MustCA(t, "other CA")
	ts := MustStartServer(t, tlsEnv(t, serverCA, clientCA)...)
	good, _, _ := clientCA.MustIssue(t, "billing-service", x509.ExtKeyUsageClientAuth)
	foreign, _, _ := otherCA.MustIssue(t, "intruder", x509.ExtKeyUsageClientAuth)

	g, rest := tlsClients(t, ts, serverCA, &good)
	if err := linkWorks(g); err != nil {
		t.Errorf("gRPC with a client certificate: %v", err)
	}
	if err := linkWorks(rest); err != nil {
		t.Errorf("REST with a client certificate: %v", err)
	}
	for name, cert := range map[string]*tls.Certificate{"no client certificate": nil, "a certificate from another CA": &foreign} {
		g, rest := tlsClients(t, ts, serverCA, cert)
		if err := linkWorks(g); err == nil {
			t.Errorf("gRPC with %s was served", name)
		}
		if err := linkWorks(rest); err == nil {
			t.Errorf("REST with %s was served", name)
		}
	}
}
