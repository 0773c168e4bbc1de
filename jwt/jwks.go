package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/linkd/linkd"
)

// maxJWKSBytes bounds a fetched JWKS document.
const maxJWKSBytes = 1 << 20

// fetchTimeout bounds one JWKS fetch, whoever waits for it.
const fetchTimeout = 10 * time.Second

// publicKey is one usable key of a JWKS, with the one algorithm it verifies.
type publicKey struct {
	kid string
	alg string
	pub crypto.PublicKey
}

// keySource holds the JWKS keys: read once from a file, or fetched from a
// URL and refreshed.
type keySource struct {
	cfg Config
	url string // empty for a file

	// fetchMu serializes fetches, so many requests naming an unknown kid
	// cause one fetch.
	fetchMu sync.Mutex
	mu      sync.RWMutex
	keys    []publicKey
	fetched time.Time // last fetch attempt, successful or not
	loaded  time.Time // last successful fetch
}

// newKeySource reads a JWKS file, or checks a JWKS URL, or returns an error.
func newKeySource(cfg Config) (*keySource, error) {
	ks := &keySource{cfg: cfg}
	if strings.HasPrefix(cfg.JWKS, "https://") || strings.HasPrefix(cfg.JWKS, "http://") {
		u, err := url.Parse(cfg.JWKS)
		if err != nil || u.Host == "" {
			return nil, errors.New("jwt: the JWKS URL does not parse")
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return nil, errors.New("jwt: a JWKS URL must be https (http only to a loopback host)")
		}
		ks.url = u.String()
		return ks, nil
	}
	b, err := os.ReadFile(cfg.JWKS)
	if err != nil {
		return nil, fmt.Errorf("jwt: read JWKS file: %w", err)
	}
	if ks.keys, err = parseJWKS(b); err != nil {
		return nil, fmt.Errorf("jwt: JWKS file %s: %w", cfg.JWKS, err)
	}
	return ks, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// find returns the key with this kid and algorithm. From a URL it fetches
// the JWKS when none is loaded or it is older than MaxAge, and refetches it
// once when the kid is unknown, at most once per MinRefresh. It returns
// EUNAUTHORIZED for an unknown kid, and EUNAVAILABLE when no JWKS could be
// fetched at all.
func (ks *keySource) find(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	if ks.url != "" {
		ks.mu.RLock()
		stale := ks.loaded.IsZero() || ks.cfg.Now().Sub(ks.loaded) > ks.cfg.MaxAge
		ks.mu.RUnlock()
		if stale {
			ks.refresh(ctx)
		}
	}
	pub, err := ks.lookup(kid, alg)
	if err == nil || ks.url == "" {
		return pub, err
	}
	ks.refresh(ctx)
	if pub, err = ks.lookup(kid, alg); err == nil {
		return pub, nil
	}
	ks.mu.RLock()
	never := ks.loaded.IsZero()
	ks.mu.RUnlock()
	if never {
		return nil, linkd.Errorf(linkd.EUNAVAILABLE, "the keys that verify user tokens cannot be fetched; retry later")
	}
	return nil, err
}

// lookup finds a loaded key. A token without a kid may use the only key of
// its algorithm.
func (ks *keySource) lookup(kid, alg string) (crypto.PublicKey, error) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	var match []publicKey
	for _, k := range ks.keys {
		if k.kid == kid || kid == "" {
			match = append(match, k)
		}
	}
	if len(match) == 0 {
		return nil, rejected("unknown key id")
	}
	if kid == "" && len(match) > 1 {
		return nil, rejected("no kid, and the JWKS has several keys")
	}
	for _, k := range match {
		if k.alg == alg {
			return k.pub, nil
		}
	}
	return nil, rejected("alg %s does not match the key's algorithm", alg)
}

// refresh fetches the JWKS unless a fetch was attempted less than
// MinRefresh ago. A failed fetch keeps the keys loaded before.
func (ks *keySource) refresh(ctx context.Context) {
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	now := ks.cfg.Now()
	ks.mu.RLock()
	recent := !ks.fetched.IsZero() && now.Sub(ks.fetched) < ks.cfg.MinRefresh
	ks.mu.RUnlock()
	if recent {
		return
	}
	keys, err := ks.fetch(ctx)
	if err != nil && ks.cfg.Logger != nil {
		ks.cfg.Logger.WarnContext(ctx, "JWKS fetch failed; keeping the keys loaded before", "jwks", RedactURL(ks.url), "err", err)
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.fetched = now
	if err == nil {
		ks.keys, ks.loaded = keys, now
	}
}

// fetch GETs and parses the JWKS. The fetch is not cancelled with the
// request that caused it: others may be waiting for it.
func (ks *keySource) fetch(ctx context.Context) ([]publicKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, errors.New("JWKS larger than 1 MiB")
	}
	return parseJWKS(b)
}

// jwk is one JSON Web Key, as much of it as linkd reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the signature keys of a JWKS that linkd can use: RSA
// keys of 2048 bits or more as RS256, P-256 keys as ES256. Keys for
// encryption, of another type or algorithm, and symmetric keys (a JWKS is
// public) are skipped; a JWKS left with no key is an error.
func parseJWKS(b []byte) ([]publicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, errors.New("not a JWKS document")
	}
	var keys []publicKey
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var pub crypto.PublicKey
		var alg string
		switch k.Kty {
		case "RSA":
			pub, alg = rsaKey(k), RS256
		case "EC":
			pub, alg = ecKey(k), ES256
		}
		if pub == nil || (k.Alg != "" && k.Alg != alg) {
			continue
		}
		keys = append(keys, publicKey{kid: k.Kid, alg: alg, pub: pub})
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable RS256 or ES256 signature key")
	}
	return keys, nil
}

// rsaKey returns k's RSA public key, or nil when it is malformed or under
// 2048 bits.
func rsaKey(k jwk) crypto.PublicKey {
	n, err1 := base64.RawURLEncoding.DecodeString(k.N)
	e, err2 := base64.RawURLEncoding.DecodeString(k.E)
	if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
		return nil
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.N.BitLen() < minRSAModulusBits || pub.E < 3 || pub.E%2 == 0 {
		return nil
	}
	return pub
}

// ecKey returns k's P-256 public key, or nil when it is malformed, on
// another curve, or not a point of P-256.
func ecKey(k jwk) crypto.PublicKey {
	if k.Crv != "P-256" {
		return nil
	}
	x, err1 := base64.RawURLEncoding.DecodeString(k.X)
	y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
	if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
		return nil
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil
	}
	return pub
}

// RedactURL returns a JWKS location safe to log: a file path as it is, a
// URL as scheme://host/path only, without user info or query, which may
// carry credentials.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	return u.Scheme + "://" + u.Host + u.Path
}
