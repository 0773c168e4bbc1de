// Package jwttest makes signing keys, JWKS documents and signed tokens for
// tests of code that verifies user tokens.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
)

// Key is a signing key with its kid and algorithm (RS256, ES256 or HS256).
type Key struct {
	Kid    string
	Alg    string
	Signer crypto.Signer // RS256, ES256
	Secret []byte        // HS256
}

// MustRSAKey returns a new 2048-bit RS256 key.
func MustRSAKey(tb testing.TB, kid string) Key {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return Key{Kid: kid, Alg: "RS256", Signer: k}
}

// MustECKey returns a new P-256 ES256 key.
func MustECKey(tb testing.TB, kid string) Key {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return Key{Kid: kid, Alg: "ES256", Signer: k}
}

// HMACKey returns an HS256 key with the given secret.
func HMACKey(secret []byte) Key { return Key{Alg: "HS256", Secret: secret} }

// JWKS returns the JWKS document publishing the public halves of keys.
func JWKS(keys ...Key) []byte {
	var out []map[string]string
	for _, k := range keys {
		switch pub := k.Signer.Public().(type) {
		case *rsa.PublicKey:
			out = append(out, map[string]string{"kty": "RSA", "kid": k.Kid, "use": "sig", "alg": "RS256",
				"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())})
		case *ecdsa.PublicKey:
			b, _ := pub.Bytes() // 0x04 || x || y
			out = append(out, map[string]string{"kty": "EC", "kid": k.Kid, "use": "sig", "crv": "P-256",
				"x": b64(b[1:33]), "y": b64(b[33:])})
		}
	}
	b, _ := json.Marshal(map[string]any{"keys": out})
	return b
}

// Sign returns a token with header {"alg": k.Alg, "kid": k.Kid} and the
// given claims, signed with k.
func Sign(tb testing.TB, k Key, claims map[string]any) string {
	tb.Helper()
	h := map[string]any{"alg": k.Alg, "typ": "JWT"}
	if k.Kid != "" {
		h["kid"] = k.Kid
	}
	return SignWithHeader(tb, k, h, claims)
}

// SignWithHeader is Sign with a header of the caller's choosing (a lying
// alg, a foreign kid), signed with k's own algorithm.
func SignWithHeader(tb testing.TB, k Key, header, claims map[string]any) string {
	tb.Helper()
	hb, err1 := json.Marshal(header)
	cb, err2 := json.Marshal(claims)
	if err1 != nil || err2 != nil {
		tb.Fatal(err1, err2)
	}
	return SignRaw(tb, k, hb, cb)
}

// SignRaw is Sign with the header and claims JSON given byte for byte, for
// tokens no map can express (a member twice, odd spacing).
func SignRaw(tb testing.TB, k Key, header, claims []byte) string {
	tb.Helper()
	signed := b64(header) + "." + b64(claims)
	digest := sha256.Sum256([]byte(signed))
	var sig []byte
	switch s := k.Signer.(type) {
	case nil:
		mac := hmac.New(sha256.New, k.Secret)
		mac.Write([]byte(signed))
		sig = mac.Sum(nil)
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, digest[:]); err != nil {
			tb.Fatal(err)
		}
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, s, digest[:])
		if err != nil {
			tb.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	}
	return signed + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
