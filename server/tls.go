package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TLSFiles names the PEM files of linkd's TLS configuration.
type TLSFiles struct {
	// Cert and Key are the server's certificate chain and private key,
	// used for gRPC and HTTP alike. They are reread when either file
	// changes, so a rotated certificate needs no restart.
	Cert, Key string
	// ClientCA, when set, turns on mutual TLS: every connection, to either
	// listener, must present a client certificate this CA bundle verifies.
	ClientCA string
	// Logger hears of a changed certificate that cannot be loaded (the old
	// one stays in use); nil discards.
	Logger *slog.Logger
}

// certReloadCheck is how often a handshake may look at the files' times.
const certReloadCheck = 10 * time.Second

// LoadTLSConfig returns the server TLS configuration (TLS 1.2 or later) for
// files, or an error naming the file that cannot be read or parsed.
func LoadTLSConfig(files TLSFiles) (*tls.Config, error) {
	r := &certReloader{files: files}
	if err := r.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.certificate}
	if files.ClientCA != "" {
		pem, err := os.ReadFile(files.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", files.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// certReloader serves the certificate, reloading it when its files change.
type certReloader struct {
	files   TLSFiles
	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func (r *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("load TLS certificate and key: %w", err)
	}
	r.cert, r.modTime = &cert, r.newestModTime()
	return nil
}

func (r *certReloader) newestModTime() time.Time {
	var t time.Time
	for _, f := range []string{r.files.Cert, r.files.Key} {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// certificate implements tls.Config.GetCertificate. A reload that fails
// (say, the key written after the certificate) keeps the old pair.
func (r *certReloader) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= certReloadCheck {
		r.checked = now
		if !r.newestModTime().Equal(r.modTime) {
			if err := r.load(); err != nil && r.files.Logger != nil {
				r.files.Logger.Error("changed TLS certificate not loaded; serving the previous one", "err", err)
			}
		}
	}
	return r.cert, nil
}
