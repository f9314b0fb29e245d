package verifycmd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/cades"
	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

const origin = "https://portal.example.fr"

var nonce = strings.Repeat("Tm9uY2U", 7) + "AAA=" // 53 chars

type fixture struct {
	dir                  string
	chain, rootOnly      string // trust files
	otherChain           string
	token, tokenWrapped  string
	tokenExpiredCert     string
	doc, otherDoc        string
	p7s, p7sAuthKey      string
	docDigestHex, digB64 string
	signNotAfter         time.Time
	// CRLs, current now unless named otherwise
	crlGood, crlGoodPEM string // the intermediate's CRL, DER and PEM, holder not listed
	crlRevoked          string // PEM, both holder certificates revoked
	crlOther            string // same CA names, other keys
	crlExpired          string
	arl                 string // the root's CRL only
	// OCSP: certificates naming the responder (and carrying testPolicy)
	responder                *cpstest.OCSPResponder
	tokenOCSP, p7sOCSP       string // good
	tokenRevoked, p7sRevoked string // revoked at the responder (not in the CRLs)
	tokenDeadOCSP            string // names a responder that does not answer
}

// testPolicy is a certificate policy of the tests, in the documentation
// arc of RFC 5612 (the IGC-Santé card policies are not known).
const testPolicy = "1.3.6.1.4.1.32473.1.1"

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "verifycmd-")
		if err != nil {
			fixErr = err
			return
		}
		fix.dir = dir
		fixErr = build(&fix)
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return &fix
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix.responder != nil {
		fix.responder.Close()
	}
	if fix.dir != "" {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func write(dir, name string, data []byte) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, data, 0o644)
}

func makeToken(cert *x509.Certificate, key *rsa.PrivateKey, origin, nonce string) ([]byte, error) {
	ho, hn := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(nonce))
	d := sha256.Sum256(append(ho[:], hn[:]...))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{
		"unverifiedCertificate": base64.StdEncoding.EncodeToString(cert.Raw), "algorithm": "RS256",
		"signature": base64.StdEncoding.EncodeToString(sig), "format": "web-eid:1.0", "appVersion": "https://cpsagent/test",
	})
}

func makeP7S(cert *x509.Certificate, key *rsa.PrivateKey, chain []*x509.Certificate, doc []byte) ([]byte, error) {
	d := sha256.Sum256(doc)
	return cades.BuildDetached(context.Background(), d[:], cert, chain, time.Now(), func(_ context.Context, tbs []byte) ([]byte, error) {
		h := sha256.Sum256(tbs)
		return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	})
}

func build(f *fixture) error {
	pki, err := cpstest.NewPKI(nil)
	if err != nil {
		return err
	}
	other, err := cpstest.NewPKI(nil)
	if err != nil {
		return err
	}
	authKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	signKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	now := time.Now()
	med := cpstest.Holders()["medecin"]
	f.signNotAfter = now.Add(365 * 24 * time.Hour).Truncate(time.Second)
	auth, sign, err := pki.Issue(med, &authKey.PublicKey, &signKey.PublicKey, now.Add(-time.Hour), f.signNotAfter)
	if err != nil {
		return err
	}
	expAuth, _, err := pki.Issue(med, &authKey.PublicKey, &signKey.PublicKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	d := f.dir
	if f.chain, err = write(d, "chain.pem", pki.ChainPEM()); err != nil {
		return err
	}
	if f.rootOnly, err = write(d, "root.der", pki.Root.Raw); err != nil {
		return err
	}
	if f.otherChain, err = write(d, "other.pem", other.ChainPEM()); err != nil {
		return err
	}
	tok, err := makeToken(auth, authKey, origin, nonce)
	if err != nil {
		return err
	}
	if f.token, err = write(d, "token.json", tok); err != nil {
		return err
	}
	if f.tokenWrapped, err = write(d, "login.json", []byte(`{"token":`+string(tok)+`}`)); err != nil {
		return err
	}
	expTok, err := makeToken(expAuth, authKey, origin, nonce)
	if err != nil {
		return err
	}
	if f.tokenExpiredCert, err = write(d, "expired.json", expTok); err != nil {
		return err
	}
	doc := []byte("Compte rendu de consultation\n")
	if f.doc, err = write(d, "doc.txt", doc); err != nil {
		return err
	}
	if f.otherDoc, err = write(d, "other.txt", []byte("autre")); err != nil {
		return err
	}
	sum := sha256.Sum256(doc)
	f.docDigestHex, f.digB64 = hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:])
	sig, err := makeP7S(sign, signKey, []*x509.Certificate{pki.Intermediate}, doc)
	if err != nil {
		return err
	}
	if f.p7s, err = write(d, "doc.txt.p7s", sig); err != nil {
		return err
	}
	sigAuth, err := makeP7S(auth, authKey, nil, doc)
	if err != nil {
		return err
	}
	if f.p7sAuthKey, err = write(d, "auth.p7s", sigAuth); err != nil {
		return err
	}
	if err := buildCRLs(f, pki, other, auth, sign, expAuth, now); err != nil {
		return err
	}
	return buildOCSP(f, pki, authKey, signKey, now)
}

// buildOCSP starts a responder of pki (on the real clock) and makes tokens
// and signatures with certificates naming it.
func buildOCSP(f *fixture, pki *cpstest.PKI, authKey, signKey *rsa.PrivateKey, now time.Time) error {
	var err error
	if f.responder, err = pki.StartOCSPResponder(cpstest.OCSPResponderOptions{}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dead := "http://" + ln.Addr().String() + "/ocsp"
	ln.Close()
	doc, err := os.ReadFile(f.doc)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		token, p7s *string
		name       string
		responder  string
		revoked    bool
	}{
		{&f.tokenOCSP, &f.p7sOCSP, "ocsp", f.responder.URL, false},
		{&f.tokenRevoked, &f.p7sRevoked, "ocsp-revoked", f.responder.URL, true},
		{&f.tokenDeadOCSP, nil, "ocsp-dead", dead, false},
	} {
		h := cpstest.Holders()["medecin"]
		h.OCSPServers = []string{c.responder}
		h.Policies = []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 32473, 1, 1}}
		auth, sign, err := pki.Issue(h, &authKey.PublicKey, &signKey.PublicKey, now.Add(-time.Hour), now.Add(24*time.Hour))
		if err != nil {
			return err
		}
		if c.revoked {
			f.responder.Revoke(auth, now.Add(-30*time.Minute), cpstest.ReasonKeyCompromise)
			f.responder.Revoke(sign, now.Add(-30*time.Minute), cpstest.ReasonKeyCompromise)
		}
		tok, err := makeToken(auth, authKey, origin, nonce)
		if err != nil {
			return err
		}
		if *c.token, err = write(f.dir, c.name+".json", tok); err != nil {
			return err
		}
		if c.p7s == nil {
			continue
		}
		sig, err := makeP7S(sign, signKey, []*x509.Certificate{pki.Intermediate}, doc)
		if err != nil {
			return err
		}
		if *c.p7s, err = write(f.dir, c.name+".p7s", sig); err != nil {
			return err
		}
	}
	return nil
}

func buildCRLs(f *fixture, pki, other *cpstest.PKI, auth, sign, expAuth *x509.Certificate, now time.Time) error {
	at := now.Add(-30 * time.Minute)
	files := []struct {
		dst  *string
		name string
		pki  *cpstest.PKI
		o    cpstest.CRLOptions
		pem  bool
	}{
		{&f.crlGood, "ac.crl", pki, cpstest.CRLOptions{Revoked: []x509.RevocationListEntry{cpstest.Revoke(expAuth, at, cpstest.ReasonSuperseded)}}, false},
		{&f.crlGoodPEM, "ac.crl.pem", pki, cpstest.CRLOptions{}, true},
		{&f.crlRevoked, "revoked.pem", pki, cpstest.CRLOptions{Revoked: []x509.RevocationListEntry{
			cpstest.Revoke(auth, at, cpstest.ReasonKeyCompromise), cpstest.Revoke(sign, at, cpstest.ReasonKeyCompromise)}}, true},
		{&f.crlOther, "other.crl", other, cpstest.CRLOptions{}, false},
		{&f.crlExpired, "expired.crl", pki, cpstest.CRLOptions{ThisUpdate: now.Add(-8 * 24 * time.Hour), NextUpdate: now.Add(-time.Hour)}, false},
		{&f.arl, "arl.crl", pki, cpstest.CRLOptions{ByRoot: true}, false},
	}
	for _, c := range files {
		crl, err := c.pki.IssueCRL(c.o)
		if err != nil {
			return err
		}
		data := crl.Raw
		if c.pem {
			data = cpstest.CRLPEM(crl.Raw)
		}
		if *c.dst, err = write(f.dir, c.name, data); err != nil {
			return err
		}
	}
	return nil
}

func run(args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := RunCommand(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestVerify(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name     string
		args     []string
		wantErr  error
		contains []string
	}{
		{"token", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.token}, nil,
			[]string{"VALID authentication token", "899700367917 (RPPS 99700367917)", "Médecin", "CPS (test card)", origin}},
		{"token kind from flags", []string{"--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.token}, nil,
			[]string{"VALID authentication token"}},
		{"token wrapped in a login body", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.tokenWrapped}, nil,
			[]string{"VALID"}},
		{"token other origin", []string{"token", "--origin", "https://evil.example", "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.token}, ErrInvalid,
			[]string{"INVALID authentication token: signature_invalid"}},
		{"token other nonce", []string{"token", "--origin", origin, "--nonce", strings.Repeat("B", 44), "--ca", f.chain, "--test-cards", "allow", f.token}, ErrInvalid,
			[]string{"signature_invalid"}},
		{"token http origin", []string{"token", "--origin", "http://127.0.0.1:47190", "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.token}, ErrInvalid,
			[]string{"origin_mismatch"}},
		{"token test card refused by default", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, f.token}, ErrInvalid,
			[]string{"test_card"}},
		{"token production required", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "require", f.token}, nil,
			[]string{"VALID"}},
		{"token other PKI", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.otherChain, "--test-cards", "allow", f.token}, ErrInvalid,
			[]string{"certificate_untrusted"}},
		{"token root only: intermediate missing", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.rootOnly, "--test-cards", "allow", f.token}, ErrInvalid,
			[]string{"certificate_untrusted"}},
		{"token expired certificate", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.tokenExpiredCert}, ErrInvalid,
			[]string{"certificate_expired"}},
		{"token checked after expiry", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--at", f.signNotAfter.Add(time.Hour).Format(time.RFC3339), f.token}, ErrInvalid,
			[]string{"certificate_expired"}},
		{"token not a token", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, f.doc}, ErrInvalid,
			[]string{"malformed"}},
		{"cades document", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--document", f.doc, f.p7s}, nil,
			[]string{"VALID CAdES signature", "DOC0036791", "SHA-256, SHA256-RSA, signing-certificate-v2", cpstest.TestRootCN, "claimed by the signer"}},
		{"cades kind from flags", []string{"--ca", f.chain, "--test-cards", "allow", "--document", f.doc, f.p7s}, nil, []string{"VALID"}},
		{"cades digest hex", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--digest", f.docDigestHex, f.p7s}, nil, []string{"VALID"}},
		{"cades digest base64", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--digest", f.digB64, f.p7s}, nil, []string{"VALID"}},
		{"cades other document", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--document", f.otherDoc, f.p7s}, ErrInvalid,
			[]string{"INVALID CAdES signature: digest_mismatch"}},
		{"cades authentication key", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--document", f.doc, f.p7sAuthKey}, ErrInvalid,
			[]string{"key_usage"}},
		{"cades other PKI", []string{"cades", "--ca", f.otherChain, "--test-cards", "allow", "--document", f.doc, f.p7s}, ErrInvalid,
			[]string{"certificate_untrusted"}},
		{"cades not CMS", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--document", f.doc, f.doc}, ErrInvalid,
			[]string{"malformed"}},
		// Revocation (--crl, fail closed).
		{"token not revoked (DER CRL)", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlGood, f.token}, nil,
			[]string{"VALID authentication token", "revocation", "not revoked"}},
		{"token not revoked (PEM CRL, ARL too)", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlGoodPEM, "--crl", f.arl, f.token}, nil,
			[]string{"not revoked"}},
		{"token revoked", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlRevoked, f.token}, ErrInvalid,
			[]string{"INVALID authentication token: certificate_revoked", "keyCompromise", "899700367917"}},
		{"token CRL of another CA", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlOther, f.token}, ErrInvalid,
			[]string{"revocation_unknown", "not signed by the issuer's key"}},
		{"token expired CRL", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlExpired, f.token}, ErrInvalid,
			[]string{"revocation_unknown", "out of date"}},
		{"token no CRL for the card's CA", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.arl, f.token}, ErrInvalid,
			[]string{"revocation_unknown", "no CRL for the issuer", cpstest.TestIntermediateCN}},
		{"token CRL out of date at --at", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlGood,
			"--at", time.Now().Add(8 * 24 * time.Hour).Format(time.RFC3339), f.token}, ErrInvalid, []string{"revocation_unknown"}},
		{"cades not revoked", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlGood, "--document", f.doc, f.p7s}, nil,
			[]string{"VALID CAdES signature", "not revoked"}},
		{"cades revoked", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--crl", f.crlGood, "--crl", f.crlRevoked, "--document", f.doc, f.p7s}, ErrInvalid,
			[]string{"INVALID CAdES signature: certificate_revoked"}},
		{"cades no CRL for the card's CA", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--crl", f.arl, "--document", f.doc, f.p7s}, ErrInvalid,
			[]string{"revocation_unknown"}},
		// Revocation by OCSP (--ocsp, network, fail closed).
		{"token OCSP good", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp", f.tokenOCSP}, nil,
			[]string{"VALID authentication token", "not revoked (checked by OCSP)"}},
		{"token OCSP revoked", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp", f.tokenRevoked}, ErrInvalid,
			[]string{"INVALID authentication token: certificate_revoked", "keyCompromise", "OCSP responder " + f.responder.URL}},
		{"token OCSP, no responder named", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp", f.token}, ErrInvalid,
			[]string{"revocation_unknown", "names no OCSP responder"}},
		{"token OCSP responder given", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp-url", f.responder.URL, f.token}, nil,
			[]string{"VALID", "not revoked (checked by OCSP)"}},
		{"token OCSP responder down", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp", f.tokenDeadOCSP}, ErrInvalid,
			[]string{"revocation_unknown", "no usable OCSP answer"}},
		{"token OCSP responder down, CRL good", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp", "--crl", f.crlGood, f.tokenDeadOCSP}, nil,
			[]string{"VALID", "not revoked (checked by OCSP, else the CRLs given)"}},
		{"token OCSP revoked, CRL good", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--ocsp", "--crl", f.crlGood, f.tokenRevoked}, ErrInvalid,
			[]string{"certificate_revoked"}},
		{"cades OCSP good", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--ocsp", "--document", f.doc, f.p7sOCSP}, nil,
			[]string{"VALID CAdES signature", "not revoked (checked by OCSP)"}},
		{"cades OCSP revoked", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--ocsp", "--document", f.doc, f.p7sRevoked}, ErrInvalid,
			[]string{"INVALID CAdES signature: certificate_revoked"}},
		// Certificate policies (--require-policy).
		{"token policy present", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--require-policy", testPolicy, f.tokenOCSP}, nil,
			[]string{"VALID"}},
		{"token one of two policies present", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow",
			"--require-policy", "1.3.6.1.4.1.32473.1.2", "--require-policy", testPolicy, f.tokenOCSP}, nil, []string{"VALID"}},
		{"token policy absent", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--require-policy", "1.3.6.1.4.1.32473.1.2", f.tokenOCSP}, ErrInvalid,
			[]string{"INVALID authentication token: certificate_policy", "include none of 1.3.6.1.4.1.32473.1.2"}},
		{"token without policies", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", "--require-policy", testPolicy, f.token}, ErrInvalid,
			[]string{"certificate_policy", "no certificate policy"}},
		{"cades policy present", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--require-policy", testPolicy, "--document", f.doc, f.p7sOCSP}, nil, []string{"VALID"}},
		{"cades policy absent", []string{"cades", "--ca", f.chain, "--test-cards", "allow", "--require-policy", testPolicy, "--document", f.doc, f.p7s}, ErrInvalid,
			[]string{"INVALID CAdES signature: certificate_policy"}},
		// Usage and input errors.
		{"no kind", []string{"--ca", f.chain, f.token}, ErrUsage, nil},
		{"no ca", []string{"token", "--origin", origin, "--nonce", nonce, f.token}, ErrUsage, nil},
		{"bad ca file", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.doc, f.token}, ErrUsage, nil},
		{"missing ca file", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", "/nonexistent", f.token}, ErrUsage, nil},
		{"token without nonce", []string{"token", "--origin", origin, "--ca", f.chain, f.token}, ErrUsage, nil},
		{"token with document", []string{"token", "--origin", origin, "--nonce", nonce, "--document", f.doc, "--ca", f.chain, f.token}, ErrUsage, nil},
		{"mixed flags", []string{"--origin", origin, "--document", f.doc, "--ca", f.chain, f.token}, ErrUsage, nil},
		{"cades both inputs", []string{"cades", "--ca", f.chain, "--document", f.doc, "--digest", f.docDigestHex, f.p7s}, ErrUsage, nil},
		{"cades no p7s", []string{"cades", "--ca", f.chain, "--document", f.doc}, ErrUsage, nil},
		{"cades bad digest", []string{"cades", "--ca", f.chain, "--digest", "abcd", f.p7s}, ErrUsage, nil},
		{"missing input", []string{"cades", "--ca", f.chain, "--document", f.doc, "/nonexistent.p7s"}, ErrUsage, nil},
		{"missing document", []string{"cades", "--ca", f.chain, "--document", "/nonexistent", f.p7s}, ErrUsage, nil},
		{"two inputs", []string{"cades", "--ca", f.chain, "--document", f.doc, f.p7s, f.p7s}, ErrUsage, nil},
		{"bad --crl file", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--crl", f.chain, f.token}, ErrUsage, nil},
		{"missing --crl file", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--crl", "/nonexistent.crl", f.token}, ErrUsage, nil},
		{"bad --at", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--at", "yesterday", f.token}, ErrUsage, nil},
		{"--ocsp with --at", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--ocsp", "--at", "2026-01-01T00:00:00Z", f.token}, ErrUsage, nil},
		{"bad --ocsp-url", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--ocsp-url", "ldap://ocsp.example/", f.token}, ErrUsage, nil},
		{"bad --require-policy", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--require-policy", "1.2.x", f.token}, ErrUsage, nil},
		{"--require-policy not an OID", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--require-policy", "3.1", f.token}, ErrUsage, nil},
		{"bad --test-cards", []string{"token", "--origin", origin, "--nonce", nonce, "--ca", f.chain, "--test-cards", "maybe", f.token}, ErrUsage, nil},
		{"unknown flag", []string{"--frobnicate"}, ErrUsage, nil},
		{"help", []string{"-h"}, flag.ErrHelp, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.args...)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v\n%s", err, tc.wantErr, out)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestVerifyJSON(t *testing.T) {
	f := getFixture(t)
	var out bytes.Buffer
	err := RunCommand(context.Background(), []string{"cades", "--json", "--ca", f.chain, "--test-cards", "allow", "--document", f.doc, f.p7s}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v["valid"] != true || v["kind"] != "cades" || v["identity"].(map[string]any)["nationalId"] != "899700367917" || len(v["chain"].([]any)) != 3 {
		t.Errorf("%s", out.Bytes())
	}
	if _, ok := v["revocation"]; ok {
		t.Errorf("revocation reported without --crl: %s", out.Bytes())
	}

	for _, tc := range []struct {
		crl        string
		valid      bool
		reason     string
		revocation any
	}{
		{f.crlGood, true, "", "not_revoked"},
		{f.crlRevoked, false, "certificate_revoked", nil},
		{f.arl, false, "revocation_unknown", nil},
	} {
		out.Reset()
		err = RunCommand(context.Background(), []string{"cades", "--json", "--ca", f.chain, "--crl", tc.crl, "--test-cards", "allow", "--document", f.doc, f.p7s}, &out, io.Discard)
		if tc.valid != (err == nil) {
			t.Fatalf("--crl %s: err = %v", tc.crl, err)
		}
		v = nil
		if err := json.Unmarshal(out.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v["valid"] != tc.valid || tc.reason != "" && v["reason"] != tc.reason || v["revocation"] != tc.revocation {
			t.Errorf("--crl %s: %s", filepath.Base(tc.crl), out.Bytes())
		}
	}

	out.Reset()
	err = RunCommand(context.Background(), []string{"token", "--json", "--origin", "https://other.example", "--nonce", nonce, "--ca", f.chain, "--test-cards", "allow", f.token}, &out, io.Discard)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	v = nil
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v["valid"] != false || v["reason"] != "signature_invalid" || v["error"] == "" || v["identity"] != nil {
		t.Errorf("%s", out.Bytes())
	}
}

// TestTrustFormats: a .p7b bundle and DER files work as --ca.
func TestTrustFormats(t *testing.T) {
	f := getFixture(t)
	chainPEM, err := os.ReadFile(f.chain)
	if err != nil {
		t.Fatal(err)
	}
	var ders []string
	rest := chainPEM
	for i := 0; ; i++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		p, err := write(t.TempDir(), "c.der", b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, "--ca", p)
	}
	args := append([]string{"cades", "--test-cards", "allow", "--document", f.doc}, ders...)
	args = append(args, f.p7s)
	if out, err := run(args...); err != nil {
		t.Fatalf("DER trust files: %v\n%s", err, out)
	}
}

func TestSingleNonce(t *testing.T) {
	s := &singleNonce{nonce: "n", issued: time.Unix(1, 0)}
	if _, err := s.Issue(context.Background()); err == nil {
		t.Error("Issue succeeded")
	}
	if _, err := s.Consume(context.Background(), "other"); err == nil {
		t.Error("unknown nonce accepted")
	}
	if at, err := s.Consume(context.Background(), "n"); err != nil || !at.Equal(time.Unix(1, 0)) {
		t.Errorf("first use: %v %v", at, err)
	}
	if _, err := s.Consume(context.Background(), "n"); err == nil {
		t.Error("replay accepted")
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"", strings.Repeat("ab", 32), strings.Repeat("A", 43) + "=", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDigest(s)
		if err == nil && len(d) != 32 {
			t.Fatalf("parseDigest(%q) = %d bytes", s, len(d))
		}
		if err != nil && !errors.Is(err, ErrUsage) {
			t.Fatalf("error %v is not a usage error", err)
		}
	})
}

// TestVerifyOCSPJSON: the --json verdicts of --ocsp and --require-policy.
func TestVerifyOCSPJSON(t *testing.T) {
	f := getFixture(t)
	for _, tc := range []struct {
		name       string
		args       []string
		valid      bool
		reason     string
		revocation any
	}{
		{"OCSP good", []string{"--ocsp", f.p7sOCSP}, true, "", "not_revoked"},
		{"OCSP revoked", []string{"--ocsp", f.p7sRevoked}, false, "certificate_revoked", nil},
		{"OCSP, no responder named", []string{"--ocsp", f.p7s}, false, "revocation_unknown", nil},
		{"policy absent", []string{"--require-policy", testPolicy, f.p7s}, false, "certificate_policy", nil},
		{"policy present", []string{"--require-policy", testPolicy, f.p7sOCSP}, true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"cades", "--json", "--ca", f.chain, "--test-cards", "allow", "--document", f.doc}, tc.args...)
			err := RunCommand(context.Background(), args, &out, io.Discard)
			if tc.valid != (err == nil) {
				t.Fatalf("err = %v\n%s", err, out.Bytes())
			}
			var v map[string]any
			if err := json.Unmarshal(out.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			var wantReason any
			if tc.reason != "" {
				wantReason = tc.reason
			}
			if v["valid"] != tc.valid || v["reason"] != wantReason || v["revocation"] != tc.revocation {
				t.Errorf("%s", out.Bytes())
			}
		})
	}
}

func TestParseOID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for an error
	}{
		{"1.3.6.1.4.1.32473.1.1", "1.3.6.1.4.1.32473.1.1"},
		{"2.999.1", "2.999.1"},
		{"0.39", "0.39"},
		{"1", ""},
		{"1.40", ""},
		{"3.1", ""},
		{"1..2", ""},
		{"1.2.", ""},
		{"1.02", ""},
		{"1.-2", ""},
		{"1.+2", ""},
		{" 1.2", ""},
		{"", ""},
		{"1.2.99999999999999999999", ""},
	} {
		oid, err := parseOID(tc.in)
		if tc.want == "" && err == nil || tc.want != "" && (err != nil || oid.String() != tc.want) {
			t.Errorf("parseOID(%q) = %v, %v; want %q", tc.in, oid, err, tc.want)
		}
	}
}
