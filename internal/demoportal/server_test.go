package demoportal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/cades"
	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
	"github.com/cpsagent/cpsagent/pkg/cpsverify"
)

const testOrigin = "https://portal.test:8443"

// world is a test PKI and one card (medecin), shared by the tests.
type world struct {
	pki               *cpstest.PKI
	authKey, signKey  *rsa.PrivateKey
	auth, sign        *x509.Certificate
	expiredAuth       *x509.Certificate
	strangerAuth      *x509.Certificate // same names, other PKI
	strangerPKI       *cpstest.PKI
	chainPEM          []byte
	otherHolderSign   *x509.Certificate
	otherHolderSignKy *rsa.PrivateKey
}

var (
	worldOnce sync.Once
	theWorld  world
	worldErr  error
)

func getWorld(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() { worldErr = buildWorld(&theWorld) })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return &theWorld
}

func buildWorld(w *world) error {
	var err error
	if w.pki, err = cpstest.NewPKI(nil); err != nil {
		return err
	}
	if w.authKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	if w.signKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	now := time.Now()
	med := cpstest.Holders()["medecin"]
	if w.auth, w.sign, err = w.pki.Issue(med, &w.authKey.PublicKey, &w.signKey.PublicKey, now.Add(-time.Hour), now.Add(365*24*time.Hour)); err != nil {
		return err
	}
	if w.expiredAuth, _, err = w.pki.Issue(med, &w.authKey.PublicKey, &w.signKey.PublicKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour)); err != nil {
		return err
	}
	if w.strangerPKI, err = cpstest.New(cpstest.Options{RootKey: w.signKey, IntermediateKey: w.authKey}); err != nil {
		return err
	}
	if w.strangerAuth, _, err = w.strangerPKI.Issue(med, &w.authKey.PublicKey, &w.signKey.PublicKey, now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		return err
	}
	w.otherHolderSignKy = w.authKey
	if _, w.otherHolderSign, err = w.pki.Issue(cpstest.Holders()["infirmier"], &w.authKey.PublicKey, &w.authKey.PublicKey, now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		return err
	}
	w.chainPEM = w.pki.ChainPEM()
	return nil
}

func (w *world) verifier() *cpsverify.Verifier {
	return &cpsverify.Verifier{Roots: w.pki.Roots(), Intermediates: w.pki.Intermediates(), AllowTestCards: true}
}

// token plays the agent: the card signs SHA-256(origin) ‖ SHA-256(nonce).
func token(t testing.TB, cert *x509.Certificate, key *rsa.PrivateKey, origin, nonce string) map[string]string {
	t.Helper()
	ho, hn := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(nonce))
	digest := sha256.Sum256(append(ho[:], hn[:]...))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"unverifiedCertificate": base64.StdEncoding.EncodeToString(cert.Raw),
		"algorithm":             "RS256",
		"signature":             base64.StdEncoding.EncodeToString(sig),
		"format":                "web-eid:1.0",
		"appVersion":            "https://cpsagent.test/1.0",
	}
}

// p7s plays the agent's CAdES signature of doc with the card signature key.
func p7s(t testing.TB, cert *x509.Certificate, key *rsa.PrivateKey, chain []*x509.Certificate, doc []byte) []byte {
	t.Helper()
	d := sha256.Sum256(doc)
	out, err := cades.BuildDetached(context.Background(), d[:], cert, chain, time.Now(), func(_ context.Context, tbs []byte) ([]byte, error) {
		h := sha256.Sum256(tbs)
		return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// browser is a test client with a cookie jar that sends the headers a
// browser sends on same-origin fetches.
type browser struct {
	t      testing.TB
	ts     *httptest.Server
	client *http.Client
}

func newPortal(t testing.TB, w *world) (*Server, *httptest.Server) {
	t.Helper()
	srv, err := New(Config{Origin: testOrigin, Verifier: w.verifier(), MaxDocumentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(ts.Close)
	return srv, ts
}

func newBrowser(t testing.TB, ts *httptest.Server) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *ts.Client() // a copy: each browser has its own cookie jar
	c.Jar = jar
	return &browser{t: t, ts: ts, client: &c}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

func (b *browser) do(method, path string, body io.Reader, header map[string]string) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}
}

func (b *browser) postJSON(path string, v any) response {
	b.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do("POST", path, bytes.NewReader(data), map[string]string{"Content-Type": "application/json"})
}

func (b *browser) nonce() string {
	b.t.Helper()
	r := b.postJSON("/api/nonce", struct{}{})
	if r.status != http.StatusOK {
		b.t.Fatalf("nonce: %d %s", r.status, r.body)
	}
	n, _ := r.json(b.t)["nonce"].(string)
	if len(n) < 44 {
		b.t.Fatalf("nonce %q too short", n)
	}
	return n
}

func (b *browser) login(w *world) map[string]any {
	b.t.Helper()
	n := b.nonce()
	r := b.postJSON("/api/login", map[string]any{"token": token(b.t, w.auth, w.authKey, testOrigin, n)})
	if r.status != http.StatusOK {
		b.t.Fatalf("login: %d %s", r.status, r.body)
	}
	return r.json(b.t)
}

func TestLogin(t *testing.T) {
	w := getWorld(t)
	_, ts := newPortal(t, w)
	b := newBrowser(t, ts)

	if s := b.do("GET", "/api/session", nil, nil).json(t); s["loggedIn"] != false {
		t.Fatalf("session before login: %v", s)
	}
	res := b.login(w)
	id := res["identity"].(map[string]any)
	if id["nationalId"] != "899700367917" || id["rpps"] != "99700367917" || id["familyName"] != "DOC0036791" {
		t.Errorf("identity = %v", id)
	}
	if res["origin"] != testOrigin || res["tokenFormat"] != "web-eid:1.0" {
		t.Errorf("login answer = %v", res)
	}
	if c := res["certificate"].(map[string]any); !strings.Contains(c["issuer"].(string), cpstest.TestIntermediateCN) {
		t.Errorf("certificate issuer = %v", c["issuer"])
	}
	s := b.do("GET", "/api/session", nil, nil).json(t)
	if s["loggedIn"] != true || s["identity"].(map[string]any)["nationalId"] != "899700367917" {
		t.Errorf("session after login: %v", s)
	}
	if r := b.postJSON("/api/logout", struct{}{}); r.status != http.StatusOK {
		t.Fatalf("logout: %d", r.status)
	}
	if s := b.do("GET", "/api/session", nil, nil).json(t); s["loggedIn"] != false {
		t.Errorf("session after logout: %v", s)
	}
}

func TestLoginRefusals(t *testing.T) {
	w := getWorld(t)
	tests := []struct {
		name string
		// tok builds the token from the nonce the server issued.
		tok      func(t *testing.T, nonce string) any
		wantCode string
	}{
		{"other origin", func(t *testing.T, n string) any {
			return token(t, w.auth, w.authKey, "https://evil.example", n)
		}, "signature_invalid"},
		{"other nonce", func(t *testing.T, n string) any {
			return token(t, w.auth, w.authKey, testOrigin, strings.Repeat("A", 44))
		}, "signature_invalid"},
		{"forged signature", func(t *testing.T, n string) any {
			tk := token(t, w.auth, w.authKey, testOrigin, n)
			sig, _ := base64.StdEncoding.DecodeString(tk["signature"])
			sig[10] ^= 1
			tk["signature"] = base64.StdEncoding.EncodeToString(sig)
			return tk
		}, "signature_invalid"},
		{"wrong key", func(t *testing.T, n string) any {
			return token(t, w.auth, w.signKey, testOrigin, n)
		}, "signature_invalid"},
		{"expired certificate", func(t *testing.T, n string) any {
			return token(t, w.expiredAuth, w.authKey, testOrigin, n)
		}, "certificate_expired"},
		{"untrusted chain", func(t *testing.T, n string) any {
			return token(t, w.strangerAuth, w.authKey, testOrigin, n)
		}, "certificate_untrusted"},
		{"signature certificate", func(t *testing.T, n string) any {
			return token(t, w.sign, w.signKey, testOrigin, n)
		}, "key_usage"},
		{"bad format", func(t *testing.T, n string) any {
			tk := token(t, w.auth, w.authKey, testOrigin, n)
			tk["format"] = "web-eid:2.0"
			return tk
		}, "token_malformed"},
		{"not an object", func(t *testing.T, n string) any { return "hello" }, "token_malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newPortal(t, w)
			b := newBrowser(t, ts)
			n := b.nonce()
			r := b.postJSON("/api/login", map[string]any{"token": tc.tok(t, n)})
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", r.status, r.body)
			}
			m := r.json(t)
			if m["code"] != tc.wantCode {
				t.Errorf("code %v, want %s (%v)", m["code"], tc.wantCode, m["detail"])
			}
			msg := m["message"].(map[string]any)
			if msg["fr"] == "" || msg["en"] == "" || msg["fr"] == msg["en"] {
				t.Errorf("messages %v", msg)
			}
			if s := b.do("GET", "/api/session", nil, nil).json(t); s["loggedIn"] != false {
				t.Error("refused token logged the session in")
			}
		})
	}
}

func TestNonceBoundToSession(t *testing.T) {
	w := getWorld(t)
	_, ts := newPortal(t, w)
	alice, mallory := newBrowser(t, ts), newBrowser(t, ts)

	n := alice.nonce()
	tk := token(t, w.auth, w.authKey, testOrigin, n)

	// Mallory relays Alice's token: her session has no nonce.
	r := mallory.postJSON("/api/login", map[string]any{"token": tk})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("relay into a session without nonce: %d", r.status)
	}
	// Nor with a nonce of her own.
	_ = mallory.nonce()
	if r := mallory.postJSON("/api/login", map[string]any{"token": tk}); r.status != http.StatusUnauthorized || r.json(t)["code"] != "signature_invalid" {
		t.Fatalf("relay into another session: %d %s", r.status, r.body)
	}
	// Alice logs in once; replaying the token fails (nonce used).
	if r := alice.postJSON("/api/login", map[string]any{"token": tk}); r.status != http.StatusOK {
		t.Fatalf("alice: %d %s", r.status, r.body)
	}
	if r := alice.postJSON("/api/login", map[string]any{"token": tk}); r.status != http.StatusUnauthorized || r.json(t)["code"] != "nonce_missing" {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	// A failed attempt burns the nonce too.
	n2 := alice.nonce()
	bad := token(t, w.auth, w.signKey, testOrigin, n2)
	_ = alice.postJSON("/api/login", map[string]any{"token": bad})
	if r := alice.postJSON("/api/login", map[string]any{"token": token(t, w.auth, w.authKey, testOrigin, n2)}); r.status != http.StatusUnauthorized {
		t.Fatalf("nonce reused after a failure: %d", r.status)
	}
}

func TestNonceExpiry(t *testing.T) {
	w := getWorld(t)
	now := time.Now()
	clock := func() time.Time { return now }
	v := w.verifier()
	v.Now = clock
	v.Nonces = &cpsverify.MemoryNonceStore{Now: clock}
	srv, err := New(Config{Origin: testOrigin, Verifier: v, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	defer ts.Close()
	b := newBrowser(t, ts)
	n := b.nonce()
	now = now.Add(cpsverify.DefaultMaxNonceAge + time.Second)
	r := b.postJSON("/api/login", map[string]any{"token": token(t, w.auth, w.authKey, testOrigin, n)})
	if r.status != http.StatusUnauthorized || r.json(t)["code"] != "nonce_expired" {
		t.Fatalf("expired nonce: %d %s", r.status, r.body)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	w := getWorld(t)
	_, ts := newPortal(t, w)
	b := newBrowser(t, ts)
	for _, path := range []string{"/api/nonce", "/api/login", "/api/logout", "/api/documents"} {
		r := b.do("POST", path, strings.NewReader("{}"), map[string]string{
			"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example",
		})
		if r.status != http.StatusForbidden || r.json(t)["code"] != "cross_origin" {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}

func TestSignatureFlow(t *testing.T) {
	w := getWorld(t)
	_, ts := newPortal(t, w)
	b := newBrowser(t, ts)
	doc := []byte("%PDF-1.7 ordonnance\n")

	if r := b.do("POST", "/api/documents", bytes.NewReader(doc), map[string]string{"Content-Type": "application/octet-stream"}); r.status != http.StatusUnauthorized {
		t.Fatalf("upload before login: %d", r.status)
	}
	b.login(w)
	up := b.do("POST", "/api/documents", bytes.NewReader(doc), map[string]string{
		"Content-Type": "application/octet-stream", "X-Filename": "ordonnance%20n%C2%B01.pdf",
	})
	if up.status != http.StatusOK {
		t.Fatalf("upload: %d %s", up.status, up.body)
	}
	u := up.json(t)
	sum := sha256.Sum256(doc)
	if u["sha256"] != base64.StdEncoding.EncodeToString(sum[:]) || u["name"] != "ordonnance n°1.pdf" || u["size"] != float64(len(doc)) {
		t.Fatalf("upload answer %v", u)
	}
	id := u["id"].(string)

	sig := p7s(t, w.sign, w.signKey, []*x509.Certificate{w.pki.Intermediate}, doc)
	r := b.postJSON("/api/documents/"+id+"/signature", map[string]string{"signature": base64.StdEncoding.EncodeToString(sig)})
	if r.status != http.StatusOK {
		t.Fatalf("signature: %d %s", r.status, r.body)
	}
	res := r.json(t)
	if res["valid"] != true || res["signerIsLoggedInUser"] != true || res["digestAlgorithm"] != "SHA-256" {
		t.Fatalf("verification %v", res)
	}
	if chain := res["chain"].([]any); len(chain) != 3 || chain[2] != cpstest.TestRootCN {
		t.Errorf("chain %v", chain)
	}
	dl := b.do("GET", res["download"].(string), nil, nil)
	if dl.status != http.StatusOK || !bytes.Equal(dl.body, sig) {
		t.Fatalf("download: %d, %d bytes", dl.status, len(dl.body))
	}
	if ct := dl.header.Get("Content-Type"); ct != "application/pkcs7-signature" {
		t.Errorf("Content-Type %q", ct)
	}
	_, params, err := mime.ParseMediaType(dl.header.Get("Content-Disposition"))
	if err != nil || params["filename"] != "ordonnance n°1.pdf.p7s" {
		t.Errorf("Content-Disposition %q (%v)", dl.header.Get("Content-Disposition"), err)
	}

	// Another browser cannot fetch it.
	other := newBrowser(t, ts)
	other.login(w)
	if r := other.do("GET", res["download"].(string), nil, nil); r.status != http.StatusNotFound {
		t.Errorf("download from another session: %d", r.status)
	}
}

func TestSignatureRefusals(t *testing.T) {
	w := getWorld(t)
	doc := []byte("document A")
	tests := []struct {
		name     string
		sig      func(t *testing.T) []byte
		wantCode string
		wantUser bool
	}{
		{"other document", func(t *testing.T) []byte {
			return p7s(t, w.sign, w.signKey, nil, []byte("document B"))
		}, "digest_mismatch", false},
		{"authentication certificate", func(t *testing.T) []byte {
			return p7s(t, w.auth, w.authKey, nil, doc)
		}, "key_usage", false},
		{"not CMS", func(t *testing.T) []byte { return []byte("garbage") }, "token_malformed", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newPortal(t, w)
			b := newBrowser(t, ts)
			b.login(w)
			u := b.do("POST", "/api/documents", bytes.NewReader(doc), map[string]string{"Content-Type": "application/octet-stream"}).json(t)
			r := b.postJSON("/api/documents/"+u["id"].(string)+"/signature", map[string]string{"signature": base64.StdEncoding.EncodeToString(tc.sig(t))})
			res := r.json(t)
			if res["valid"] != false {
				t.Fatalf("accepted: %v", res)
			}
			if e := res["error"].(map[string]any); e["code"] != tc.wantCode {
				t.Errorf("code %v, want %s (%v)", e["code"], tc.wantCode, e["detail"])
			}
		})
	}

	t.Run("signed by another holder", func(t *testing.T) {
		_, ts := newPortal(t, w)
		b := newBrowser(t, ts)
		b.login(w)
		u := b.do("POST", "/api/documents", bytes.NewReader(doc), map[string]string{"Content-Type": "application/octet-stream"}).json(t)
		sig := p7s(t, w.otherHolderSign, w.otherHolderSignKy, nil, doc)
		res := b.postJSON("/api/documents/"+u["id"].(string)+"/signature", map[string]string{"signature": base64.StdEncoding.EncodeToString(sig)}).json(t)
		if res["valid"] != true || res["signerIsLoggedInUser"] != false {
			t.Errorf("%v", res)
		}
	})
}

func TestUploadLimits(t *testing.T) {
	w := getWorld(t)
	_, ts := newPortal(t, w)
	b := newBrowser(t, ts)
	b.login(w)
	tests := []struct {
		name   string
		body   []byte
		ctype  string
		status int
	}{
		{"too large", make([]byte, 1<<20+1), "application/octet-stream", http.StatusRequestEntityTooLarge},
		{"empty", nil, "application/octet-stream", http.StatusBadRequest},
		{"form", []byte("a=b"), "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		if r := b.do("POST", "/api/documents", bytes.NewReader(tc.body), map[string]string{"Content-Type": tc.ctype}); r.status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, r.status, tc.status)
		}
	}
	// Only the last maxDocsPerSession documents are kept.
	var ids []string
	for i := 0; i < maxDocsPerSession+1; i++ {
		u := b.do("POST", "/api/documents", strings.NewReader("doc"), map[string]string{"Content-Type": "application/octet-stream"}).json(t)
		ids = append(ids, u["id"].(string))
	}
	r := b.postJSON("/api/documents/"+ids[0]+"/signature", map[string]string{"signature": "AAAA"})
	if r.status != http.StatusNotFound {
		t.Errorf("oldest document still there: %d", r.status)
	}
}

func TestStaticAndHeaders(t *testing.T) {
	w := getWorld(t)
	_, ts := newPortal(t, w)
	b := newBrowser(t, ts)
	tests := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/app.js">`},
		{"/app.js", "text/javascript; charset=utf-8", "from '/cpsagent.js'"},
		{"/style.css", "text/css; charset=utf-8", ":root"},
		{"/cpsagent.js", "text/javascript; charset=utf-8", "export class CpsAgent"},
		{"/api/config", "application/json; charset=utf-8", `"agentEndpoints":null`},
	}
	for _, tc := range tests {
		r := b.do("GET", tc.path, nil, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != tc.ctype || !bytes.Contains(r.body, []byte(tc.contains)) {
			t.Errorf("%s: %d %q", tc.path, r.status, r.header.Get("Content-Type"))
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"connect-src 'self' https://127.0.0.1:47180 wss://127.0.0.1:47180 https://[::1]:47180 wss://[::1]:47180 https://127.0.0.1:47181 ", "wss://[::1]:47199;", "frame-ancestors 'none'", "script-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", tc.path, csp, want)
			}
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.path)
		}
	}
	if r := b.do("GET", "/nope", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("/nope: %d", r.status)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	w := getWorld(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"http origin", Config{Origin: "http://127.0.0.1:47190", Verifier: w.verifier()}},
		{"origin with path", Config{Origin: "https://127.0.0.1:47190/x", Verifier: w.verifier()}},
		{"no verifier", Config{Origin: testOrigin}},
		{"no roots", Config{Origin: testOrigin, Verifier: &cpsverify.Verifier{}}},
		{"bad agent", Config{Origin: testOrigin, Verifier: w.verifier(), AgentEndpoints: []string{"ftp://x"}}},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"ordonnance%20n%C2%B01.pdf", "ordonnance n°1.pdf"},
		{"..%2F..%2Fetc%2Fpasswd", "passwd"},
		{`C:\Users\x\doc.txt`, "doc.txt"},
		{"a%0Ab%22c.txt", "abc.txt"},
		{"", "document"},
		{"..", "document"},
		{"%zz", "%zz"},
		{strings.Repeat("é", 130), strings.Repeat("é", 120)},
	}
	for _, tc := range tests {
		if got := cleanFilename(tc.in); got != tc.want {
			t.Errorf("cleanFilename(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzCleanFilename(f *testing.F) {
	for _, s := range []string{"a.pdf", "%2F", "..", "\x00", "é/è\\x", "%C3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := cleanFilename(s)
		if got == "" || strings.ContainsAny(got, "/\"\r\n\x00") || len([]rune(got)) > 120 {
			t.Fatalf("cleanFilename(%q) = %q", s, got)
		}
	})
}

// TestTrustReload: the agent rewrites the virtual card's chain at each
// start; the portal follows without a restart, and nonces survive.
func TestTrustReload(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	chain := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(chain, w.chainPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Origin: testOrigin, Verifier: &cpsverify.Verifier{AllowTestCards: true}, TrustFiles: []string{chain}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	defer ts.Close()
	b := newBrowser(t, ts)
	b.login(w)

	// A nonce issued before the chain changes.
	n := b.nonce()
	if err := os.WriteFile(chain, w.strangerPKI.ChainPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(chain, time.Now().Add(time.Minute), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r := b.postJSON("/api/login", map[string]any{"token": token(t, w.strangerAuth, w.authKey, testOrigin, n)})
	if r.status != http.StatusOK {
		t.Fatalf("card of the new chain: %d %s", r.status, r.body)
	}
	r = b.postJSON("/api/login", map[string]any{"token": token(t, w.auth, w.authKey, testOrigin, b.nonce())})
	if r.status != http.StatusUnauthorized || r.json(t)["code"] != "certificate_untrusted" {
		t.Fatalf("card of the old chain: %d %s", r.status, r.body)
	}
	// A broken file keeps the last good anchors.
	if err := os.WriteFile(chain, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = b.postJSON("/api/login", map[string]any{"token": token(t, w.strangerAuth, w.authKey, testOrigin, b.nonce())})
	if r.status != http.StatusOK {
		t.Fatalf("after a broken rewrite: %d %s", r.status, r.body)
	}
}
