package server

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkd/linkd/server/tlstest"
)

// mustWriteServerCert writes a server certificate from ca to dir's
// cert.pem and key.pem and returns their names.
func mustWriteServerCert(t *testing.T, ca *tlstest.CA, dir string) TLSFiles {
	t.Helper()
	_, certPEM, keyPEM := ca.MustIssue(t, "linkd", x509.ExtKeyUsageServerAuth)
	files := TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	for path, b := range map[string][]byte{files.Cert: certPEM, files.Key: keyPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestLoadTLSConfig_Reload: a certificate rewritten in place is served
// from the next handshake that checks the files, without a restart.
func TestLoadTLSConfig_Reload(t *testing.T) {
	oldCA, newCA := tlstest.MustCA(t, "old CA"), tlstest.MustCA(t, "new CA")
	dir := t.TempDir()
	files := mustWriteServerCert(t, oldCA, dir)
	r := &certReloader{files: files}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	issuer := func() string {
		t.Helper()
		c, err := r.certificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Issuer.CommonName
	}
	if got := issuer(); got != "old CA" {
		t.Fatalf("issuer = %q, want old CA", got)
	}
	mustWriteServerCert(t, newCA, dir)
	later := time.Now().Add(time.Minute)
	for _, f := range []string{files.Cert, files.Key} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := issuer(); got != "old CA" {
		t.Errorf("issuer within the check interval = %q, want old CA still", got)
	}
	r.checked = time.Time{} // the interval has passed
	if got := issuer(); got != "new CA" {
		t.Errorf("issuer after the files changed = %q, want new CA", got)
	}

	os.WriteFile(files.Key, []byte("half-written"), 0o600)
	os.Chtimes(files.Key, later.Add(time.Minute), later.Add(time.Minute))
	r.checked = time.Time{}
	if got := issuer(); got != "new CA" {
		t.Errorf("issuer after a broken rewrite = %q, want new CA kept", got)
	}
}

func TestLoadTLSConfig_Errors(t *testing.T) {
	dir := t.TempDir()
	files := mustWriteServerCert(t, tlstest.MustCA(t, "CA"), dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]TLSFiles{
		"missing cert":      {Cert: filepath.Join(dir, "none.pem"), Key: files.Key},
		"key is not a key":  {Cert: files.Cert, Key: notPEM},
		"client CA missing": {Cert: files.Cert, Key: files.Key, ClientCA: filepath.Join(dir, "none.pem")},
		"client CA not PEM": {Cert: files.Cert, Key: files.Key, ClientCA: notPEM},
	} {
		if _, err := LoadTLSConfig(f); err == nil {
			t.Errorf("%s: LoadTLSConfig succeeded", name)
		}
	}
	cfg, err := LoadTLSConfig(TLSFiles{Cert: files.Cert, Key: files.Key, ClientCA: files.Cert})
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("mutual TLS config = %+v, %v", cfg, err)
	}
}
