package cpsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-256 for RS256/PS256/ES256
	_ "crypto/sha512" // SHA-384/512
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// MaxTokenSize bounds the JSON accepted by ParseAuthToken.
const MaxTokenSize = 64 << 10

// AuthToken is a Web eID authentication token ("web-eid:1.x" format): a
// certificate and a signature over hash(hash(origin) ‖ hash(nonce)). Origin
// and nonce are not in the token: the server supplies them from its own
// state, which is what binds the token to the site and the session.
type AuthToken struct {
	UnverifiedCertificate string `json:"unverifiedCertificate"` // base64 DER
	Algorithm             string `json:"algorithm"`             // RS256, PS256, ES256 …
	Signature             string `json:"signature"`             // base64
	Format                string `json:"format"`                // "web-eid:1.0"
	AppVersion            string `json:"appVersion"`            // informational
}

type tokenAlgorithm struct {
	hash crypto.Hash
	kind int
}

const (
	kindPKCS1 = iota
	kindPSS
	kindECDSA
)

// tokenAlgorithms is the Web eID allow-list (JWS names, RFC 7518 §3.3–3.5).
var tokenAlgorithms = map[string]tokenAlgorithm{
	"RS256": {crypto.SHA256, kindPKCS1}, "RS384": {crypto.SHA384, kindPKCS1}, "RS512": {crypto.SHA512, kindPKCS1},
	"PS256": {crypto.SHA256, kindPSS}, "PS384": {crypto.SHA384, kindPSS}, "PS512": {crypto.SHA512, kindPSS},
	"ES256": {crypto.SHA256, kindECDSA}, "ES384": {crypto.SHA384, kindECDSA}, "ES512": {crypto.SHA512, kindECDSA},
}

// tokenFormat accepts major version 1 with any minor version, as Web eID
// validators do ("web-eid:1", "web-eid:1.0", "web-eid:1.1").
var tokenFormat = regexp.MustCompile(`^web-eid:1(\.[0-9]{1,3})?$`)

// ParseAuthToken decodes a token's JSON. It requires a single JSON object
// with string values for the known fields, no duplicate keys and no
// trailing data; unknown fields (later format versions) are ignored.
// Semantic checks are left to VerifyAuthToken.
func ParseAuthToken(data []byte) (AuthToken, error) {
	var t AuthToken
	if len(data) > MaxTokenSize {
		return t, fmt.Errorf("%w: token larger than %d bytes", ErrFormat, MaxTokenSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return t, fmt.Errorf("%w: token is not a JSON object", ErrFormat)
	}
	fields := map[string]*string{
		"unverifiedCertificate": &t.UnverifiedCertificate,
		"algorithm":             &t.Algorithm,
		"signature":             &t.Signature,
		"format":                &t.Format,
		"appVersion":            &t.AppVersion,
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return AuthToken{}, fmt.Errorf("%w: %w", ErrFormat, err)
		}
		key, ok := tok.(string)
		if !ok {
			return AuthToken{}, fmt.Errorf("%w: bad object key", ErrFormat)
		}
		if seen[key] {
			return AuthToken{}, fmt.Errorf("%w: duplicate field %q", ErrFormat, key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return AuthToken{}, fmt.Errorf("%w: %w", ErrFormat, err)
		}
		dst, known := fields[key]
		if !known {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return AuthToken{}, fmt.Errorf("%w: field %q must be a string", ErrFormat, key)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return AuthToken{}, fmt.Errorf("%w: unterminated object", ErrFormat)
	}
	if _, err := dec.Token(); err != io.EOF {
		return AuthToken{}, fmt.Errorf("%w: trailing data after the token", ErrFormat)
	}
	for _, k := range []string{"unverifiedCertificate", "algorithm", "signature", "format"} {
		if *fields[k] == "" {
			return AuthToken{}, fmt.Errorf("%w: field %q missing or empty", ErrFormat, k)
		}
	}
	return t, nil
}

// TokenSignedData returns the bytes a Web eID token signs for origin and
// nonce, hash(origin) ‖ hash(nonce), and the hash the signature algorithm
// applies to them. For RS256 these are 64 bytes signed with PKCS#1 v1.5
// over their SHA-256.
func TokenSignedData(algorithm, origin, nonce string) ([]byte, crypto.Hash, error) {
	alg, ok := tokenAlgorithms[algorithm]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, algorithm)
	}
	h := alg.hash.New()
	h.Write([]byte(origin))
	data := h.Sum(nil)
	h.Reset()
	h.Write([]byte(nonce))
	return h.Sum(data), alg.hash, nil
}

// decodeBase64 accepts standard base64 with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// VerifyAuthToken verifies a Web eID token for the expected origin (the
// portal's own origin, from its configuration, not from the request) and
// the nonce the server issued for this session. In order it checks: the
// format, the algorithm allow-list, the origin (exact match in
// AllowedOrigins), the nonce (consumed from Nonces, single use, not older
// than MaxNonceAge), the certificate (parses, valid at Now, keyUsage
// digitalSignature, EKU clientAuth when an EKU is present, chains to Roots
// through Intermediates, one of RequiredPolicies when set, not revoked
// when Revocation is set, test-card policy) and finally the signature.
//
// The returned identity comes from the now verified certificate.
func (v *Verifier) VerifyAuthToken(ctx context.Context, token AuthToken, origin, nonce string) (*cpsid.Identity, error) {
	if err := v.checkConfig(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !tokenFormat.MatchString(token.Format) {
		return nil, fmt.Errorf("%w: token format %q, want web-eid:1.x", ErrFormat, token.Format)
	}
	alg, ok := tokenAlgorithms[token.Algorithm]
	if !ok {
		return nil, fmt.Errorf("%w: token algorithm %q", ErrUnsupportedAlgorithm, token.Algorithm)
	}
	if err := v.checkOrigin(origin); err != nil {
		return nil, err
	}
	if len(nonce) < 44 || len(nonce) > 1024 {
		return nil, fmt.Errorf("%w: nonce must be 44 to 1024 characters", ErrNonceUnknown)
	}
	issuedAt, err := v.nonces().Consume(ctx, nonce)
	if err != nil {
		if errors.Is(err, ErrNonce) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: consuming nonce: %w", ErrNonce, err)
	}
	now := v.now()
	if now.Sub(issuedAt) > v.maxNonceAge() {
		return nil, fmt.Errorf("%w: issued %s ago", ErrNonceExpired, now.Sub(issuedAt).Round(1e9))
	}

	der, err := decodeBase64(token.UnverifiedCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: unverifiedCertificate: %w", ErrCertificateMalformed, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificateMalformed, err)
	}
	if err := checkValidity(cert, now); err != nil {
		return nil, err
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("%w: authentication needs keyUsage digitalSignature", ErrKeyUsage)
	}
	if (len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0) &&
		!slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, fmt.Errorf("%w: extKeyUsage lacks clientAuth", ErrKeyUsage)
	}
	chains, err := v.verifyChain(cert, nil, now, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	if err := v.checkPolicies(cert); err != nil {
		return nil, err
	}
	if _, err := v.checkRevocation(ctx, chains, now); err != nil {
		return nil, err
	}
	id, err := cpsid.FromCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificateMalformed, err)
	}
	if err := v.checkCardEnvironment(id); err != nil {
		return nil, err
	}

	sig, err := decodeBase64(token.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrFormat, err)
	}
	if err := verifyTokenSignature(alg, cert.PublicKey, origin, nonce, sig); err != nil {
		// Tell a relayed token (signed for another allowed origin) from a
		// broken one; both are refused.
		for _, other := range v.AllowedOrigins {
			if other != origin && verifyTokenSignature(alg, cert.PublicKey, other, nonce, sig) == nil {
				return nil, fmt.Errorf("%w: token was signed for %q, not %q", ErrOriginMismatch, other, origin)
			}
		}
		return nil, err
	}
	return id, nil
}

func verifyTokenSignature(alg tokenAlgorithm, pub any, origin, nonce string, sig []byte) error {
	h := alg.hash.New()
	h.Write([]byte(origin))
	data := h.Sum(nil)
	h.Reset()
	h.Write([]byte(nonce))
	data = h.Sum(data)
	h.Reset()
	h.Write(data)
	digest := h.Sum(nil)

	switch alg.kind {
	case kindPKCS1, kindPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: RSA algorithm with a %T key", ErrSignature, pub)
		}
		var err error
		if alg.kind == kindPKCS1 {
			err = rsa.VerifyPKCS1v15(k, alg.hash, digest, sig)
		} else {
			err = rsa.VerifyPSS(k, alg.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		return nil
	case kindECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: ECDSA algorithm with a %T key", ErrSignature, pub)
		}
		// The card returns raw r ‖ s (IEEE P1363), not ASN.1.
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return fmt.Errorf("%w: ECDSA signature of %d bytes, want %d", ErrSignature, len(sig), 2*n)
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, digest, r, s) {
			return fmt.Errorf("%w: ECDSA verification failed", ErrSignature)
		}
		return nil
	}
	return ErrUnsupportedAlgorithm
}
