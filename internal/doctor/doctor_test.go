package doctor

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/browserpolicy"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/localca"
)

func TestIdentifiersMatchAPI(t *testing.T) {
	if agentName != api.AgentName || problemTypeBase != api.ProblemTypeBase {
		t.Fatalf("doctor identifies the agent by %q/%q, the API sends %q/%q", agentName, problemTypeBase, api.AgentName, api.ProblemTypeBase)
	}
}

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"RPPS 81001234567 ok", "RPPS ********567 ok"},
		{`{"serialNumber":"1234567890","reader":"R"}`, `{"serialNumber":"*******890","reader":"R"}`},
		{`serial=80276001234 x`, `serial=********234 x`},
		{"cert 3a5f9c0d1e2f34567890abcd end", "cert *********************bcd end"},
		{`"sha256":"abc"`, `"sha256":"abc"`},
		{"KIT DOC0036791", "KIT DOC****791"},
		{"port 47180, pid 1234, 2026-11-25T10:00:00Z", "port 47180, pid 1234, 2026-11-25T10:00:00Z"},
		{"nothing to hide", "nothing to hide"},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeSession is a card.Session that only ends.
type fakeSession struct{}

func (fakeSession) Transmit([]byte) ([]byte, error) { return nil, errors.New("unused") }
func (fakeSession) ATR() []byte                     { return nil }
func (fakeSession) Insertion() uint64               { return 1 }
func (fakeSession) End(bool) error                  { return nil }

func cps3(serial string) *card.CardSummary {
	return &card.CardSummary{Generation: "CPS3", Supported: true, Serial: serial}
}

func find(r Report, id string) Check {
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	return Check{}
}

func TestCardChecks(t *testing.T) {
	sharing := fmt.Errorf("%w: %q: %w", card.ErrCardFailure, "R", errors.New("Sharing violation."))
	tests := []struct {
		name                       string
		readers                    []card.Reader
		err                        error
		begin                      func(ctx context.Context, r string) (card.Session, error)
		pcsc, rd, cards, exclusive Status
	}{
		{"service down", nil, fmt.Errorf("x: %w", card.ErrPCSCUnavailable), nil, Fail, Skip, Skip, Skip},
		{"no reader", nil, nil, nil, OK, Warn, Warn, Skip},
		{"no card", []card.Reader{{Name: "R"}}, nil, nil, OK, OK, Warn, Skip},
		{"ready", []card.Reader{{Name: "R", CardPresent: true, Card: cps3("1234567890")}}, nil, nil, OK, OK, OK, OK},
		{"unsupported", []card.Reader{{Name: "R", CardPresent: true, Card: &card.CardSummary{Generation: "unknown"}}}, nil, nil, OK, OK, Warn, OK},
		{"two CPS", []card.Reader{{Name: "A", CardPresent: true, Card: cps3("1")}, {Name: "B", CardPresent: true, Card: cps3("2")}}, nil, nil, OK, OK, Warn, OK},
		{"held exclusively", []card.Reader{{Name: "R", CardPresent: true, Card: cps3("1")}}, nil,
			func(context.Context, string) (card.Session, error) { return nil, sharing }, OK, OK, OK, Fail},
		{"long transaction", []card.Reader{{Name: "R", CardPresent: true, Card: cps3("1")}}, nil,
			func(ctx context.Context, _ string) (card.Session, error) { <-ctx.Done(); return nil, ctx.Err() }, OK, OK, OK, Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			begin := tt.begin
			if begin == nil {
				begin = func(context.Context, string) (card.Session, error) { return fakeSession{}, nil }
			}
			d := Deps{
				Readers:  func(context.Context) ([]card.Reader, error) { return tt.readers, tt.err },
				Begin:    begin,
				AgentURL: "https://127.0.0.1:1",
			}
			r := Run(t.Context(), d)
			for id, want := range map[string]Status{"pcsc": tt.pcsc, "readers": tt.rd, "cards": tt.cards, "exclusive": tt.exclusive} {
				if got := find(r, id); got.Status != want {
					t.Errorf("%s: %s (%s), want %s", id, got.Status, got.Detail.In(i18n.EN), want)
				}
			}
		})
	}
	// Not wired: skipped, never a failure.
	r := Run(t.Context(), Deps{AgentURL: "https://127.0.0.1:1"})
	for _, id := range []string{"pcsc", "readers", "cards", "exclusive", "tls"} {
		if find(r, id).Status != Skip {
			t.Errorf("%s not skipped", id)
		}
	}
}

// agentServer serves handler over TLS with the certificate of a local CA in
// dir (the agent's own localca), and returns its base URL.
func agentServer(t *testing.T, dir string, handler http.HandlerFunc) string {
	t.Helper()
	ca, _, err := localca.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Not StartTLS: it would add httptest's own certificate, which wins over
	// GetCertificate for a connection without SNI (an IP address).
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener = tls.NewListener(srv.Listener, ca.TLSConfig())
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.Replace(srv.URL, "http://", "https://", 1)
}

func statusOK(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"agent":"cpsagent","version":"1.2.3","apiVersion":"1.0"}`)
}

func originRefused(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, `{"type":"https://cpsagent.github.io/problems/origin_not_allowed","status":403,"code":"origin_not_allowed"}`)
}

func squatter(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Server", "OtherHealthAgent/2.0")
	io.WriteString(w, `{"status":"ok"}`)
}

func TestAgentCheck(t *testing.T) {
	t.Run("the agent answers", func(t *testing.T) {
		dir := t.TempDir()
		url := agentServer(t, dir, statusOK)
		c := checkAgent(t.Context(), Deps{AgentURL: url, TLSDir: dir, PortOwner: portOwner})
		if c.Status != OK || !strings.Contains(strings.Join(c.Facts, " "), "version 1.2.3") {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("the agent's origin gate answers", func(t *testing.T) {
		dir := t.TempDir()
		url := agentServer(t, dir, originRefused)
		if c := checkAgent(t.Context(), Deps{AgentURL: url, TLSDir: dir, PortOwner: portOwner}); c.Status != OK {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("another program with our CA's port", func(t *testing.T) {
		dir := t.TempDir()
		url := agentServer(t, dir, squatter)
		c := checkAgent(t.Context(), Deps{AgentURL: url, TLSDir: dir, PortOwner: portOwner})
		if c.Status != Fail || c.Detail.Key != i18n.DoctorPortSquatted {
			t.Fatalf("%+v", c)
		}
		if !strings.Contains(strings.Join(c.Facts, " "), "OtherHealthAgent") {
			t.Errorf("facts %v", c.Facts)
		}
	})
	t.Run("squatter with its own certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(squatter))
		defer srv.Close()
		dir := t.TempDir()
		if _, _, err := localca.Ensure(dir); err != nil {
			t.Fatal(err)
		}
		c := checkAgent(t.Context(), Deps{AgentURL: srv.URL, TLSDir: dir, PortOwner: portOwner})
		if c.Status != Fail || c.Detail.Key != i18n.DoctorPortSquatted {
			t.Fatalf("%+v", c)
		}
		// On Linux the listening process is named: this test binary.
		if _, err := os.Stat("/proc/net/tcp"); err == nil && !strings.Contains(strings.Join(c.Facts, " "), "pid ") {
			t.Errorf("owner not found: %v", c.Facts)
		}
	})
	t.Run("another user's agent", func(t *testing.T) {
		url := agentServer(t, t.TempDir(), statusOK)
		mine := t.TempDir()
		if _, _, err := localca.Ensure(mine); err != nil {
			t.Fatal(err)
		}
		c := checkAgent(t.Context(), Deps{AgentURL: url, TLSDir: mine, PortOwner: portOwner})
		if c.Status != Fail || c.Detail.Key != i18n.DoctorAgentOtherCA {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("plain HTTP on the port", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(squatter))
		defer srv.Close()
		url := strings.Replace(srv.URL, "http://", "https://", 1)
		c := checkAgent(t.Context(), Deps{AgentURL: url, PortOwner: portOwner})
		if c.Status != Fail || c.Detail.Key != i18n.DoctorPortSquatted {
			t.Fatalf("%+v (%s)", c, c.Detail.In(i18n.EN))
		}
	})
	t.Run("not running", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := checkAgent(t.Context(), Deps{AgentURL: "https://" + addr, PortOwner: portOwner})
		if c.Status != Warn || c.Detail.Key != i18n.DoctorAgentDown {
			t.Fatalf("%+v (%s)", c, c.Detail.In(i18n.EN))
		}
	})
}

// selfSignedServer serves handler over TLS with a self-signed certificate
// that has every name the agent's has (localhost, 127.0.0.1, ::1) and
// serverAuth: only its issuer is wrong, as for a squatter that copied the
// agent's profile. It returns the base URL and the requests served.
func selfSignedServer(t *testing.T, handler http.HandlerFunc) (string, func() []string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		handler(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestSec07_SquatterCertificateRefused (security.md §6 item 7): a program
// squatting the agent's port with a self-signed certificate is never taken
// for the agent by the Go client that talks to it (cpsagent doctor, which
// verifies the TLS certificate against the agent's own local CA), even
// when it answers exactly like cpsagent. The doctor only ever sends GET
// /v1/status, and sends it without verification only to name the squatter
// after the verified handshake failed. The browser side is
// web/test/agent.test.js ("TestSec07") and the Chromium end-to-end test
// (web/e2e/run.mjs, "agent certificate not trusted").
func TestSec07_SquatterCertificateRefused(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		withCA  bool
		status  Status
		detail  i18n.Key
	}{
		{"impersonates the agent", statusOK, true, Fail, i18n.DoctorAgentOtherCA},
		{"impersonates the agent's refusals", originRefused, true, Fail, i18n.DoctorAgentOtherCA},
		{"another program", squatter, true, Fail, i18n.DoctorPortSquatted},
		// Without the agent's CA nothing can be verified: never OK.
		{"impersonates the agent, no CA to check with", statusOK, false, Warn, i18n.DoctorAgentNoCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, seen := selfSignedServer(t, tt.handler)
			dir := t.TempDir()
			if tt.withCA {
				if _, _, err := localca.Ensure(dir); err != nil {
					t.Fatal(err)
				}
			}
			c := checkAgent(t.Context(), Deps{AgentURL: url, TLSDir: dir, PortOwner: portOwner})
			if c.Status != tt.status || c.Detail.Key != tt.detail {
				t.Fatalf("%s: %s, want %s %s", c.Status, c.Detail.In(i18n.EN), tt.status, tt.detail)
			}
			if got := seen(); !slices.Equal(got, []string{"GET /v1/status"}) {
				t.Fatalf("the squatter received %q, want only the identifying GET /v1/status", got)
			}
		})
	}
}

// writeChain writes ca.pem and cert.pem with the given leaf validity.
func writeChain(t *testing.T, dir string, notAfter time.Time, ips []net.IP) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(3 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: notAfter,
		DNSNames: []string{"localhost"}, IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, der := range map[string][]byte{"ca.pem": caDER, "cert.pem": leafDER} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTLSCheck(t *testing.T) {
	loop := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	tests := []struct {
		name     string
		notAfter time.Duration
		ips      []net.IP
		want     Status
		key      i18n.Key
	}{
		{"valid", 400 * 24 * time.Hour, loop, OK, i18n.DoctorTLSOK},
		{"expires soon", 10 * 24 * time.Hour, loop, Warn, i18n.DoctorTLSSoon},
		{"expired", -time.Hour, loop, Fail, i18n.DoctorTLSExpired},
		{"no 127.0.0.1", 400 * 24 * time.Hour, nil, Fail, i18n.DoctorTLSInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeChain(t, dir, time.Now().Add(tt.notAfter), tt.ips)
			c := checkTLS(Deps{TLSDir: dir, Now: time.Now})
			if c.Status != tt.want || c.Detail.Key != tt.key {
				t.Fatalf("%s: %s", c.Status, c.Detail.In(i18n.EN))
			}
		})
	}
	if c := checkTLS(Deps{TLSDir: t.TempDir(), Now: time.Now}); c.Status != Warn || c.Detail.Key != i18n.DoctorTLSMissing {
		t.Fatalf("missing: %+v", c)
	}
	// The agent's own local CA passes.
	dir := t.TempDir()
	if _, _, err := localca.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	if c := checkTLS(Deps{TLSDir: dir, Now: time.Now}); c.Status != OK {
		t.Fatalf("localca: %s %s", c.Status, c.Detail.In(i18n.EN))
	}
}

func TestPolicyAndConfigChecks(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	if c := checkPolicy(Deps{PolicyPath: pol}); c.Status != OK || c.Detail.Key != i18n.DoctorPolicyNone {
		t.Fatalf("none: %+v", c)
	}
	os.WriteFile(pol, []byte(`{"allowOrigins":["https://a.fr"],"allowUserOrigins":false}`), 0o644)
	if c := checkPolicy(Deps{PolicyPath: pol}); c.Status != OK || c.Detail.Key != i18n.DoctorPolicyLocked {
		t.Fatalf("locked: %+v", c)
	}
	os.WriteFile(pol, []byte(`{"allowOrigin":["https://a.fr"]}`), 0o644)
	if c := checkPolicy(Deps{PolicyPath: pol}); c.Status != Fail || !strings.Contains(c.Detail.In(i18n.FR), "mode fermé") {
		t.Fatalf("bad: %+v", c)
	}
	os.WriteFile(filepath.Join(dir, "consent.json"), []byte(`{"version":1,"alwaysAllowed":[{"origin":"https://u.fr"}]}`), 0o600)
	c := checkConfig(Deps{ConfigFile: "/x/config.json", AllowOrigins: []string{"https://c.fr"}, StateDir: dir})
	if c.Status != OK || !strings.Contains(strings.Join(c.Facts, "\n"), "alwaysAllowed: https://u.fr") {
		t.Fatalf("config: %+v", c)
	}
	if c := checkConfig(Deps{ConfigErr: errors.New("line 3: unknown field")}); c.Status != Fail {
		t.Fatalf("config error: %+v", c)
	}
}

func TestReportText(t *testing.T) {
	r := Report{Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Version: "1.0", OS: "linux/amd64", Checks: []Check{
		{ID: "pcsc", Status: Fail, Title: msg(i18n.DoctorPCSCTitle), Detail: msg(i18n.DoctorPCSCDown), Hint: msg(i18n.DoctorPCSCHintLinux)},
		{ID: "readers", Status: OK, Title: msg(i18n.DoctorReadersTitle), Detail: msg(i18n.DoctorReadersOK, 1), Facts: []string{"Reader 0"}},
	}}
	var fr, en bytes.Buffer
	r.WriteText(&fr, i18n.FR)
	r.WriteText(&en, i18n.EN)
	for _, want := range []string{"[ÉCHEC] Service carte à puce (PC/SC)", "→ Installez et démarrez pcscd", "[OK] Lecteurs de carte", "    - Reader 0", "Résumé : 1 OK, 0 avertissement(s), 1 échec(s)"} {
		if !strings.Contains(fr.String(), want) {
			t.Errorf("French report lacks %q:\n%s", want, fr.String())
		}
	}
	if !strings.Contains(en.String(), "[FAILED] Smart-card service (PC/SC)") {
		t.Errorf("English report:\n%s", en.String())
	}
	if r.Worst() != Fail {
		t.Error("worst")
	}
	b, _ := json.Marshal(r.JSON())
	if !strings.Contains(string(b), `"fr":"Le service carte à puce ne répond pas`) || !strings.Contains(string(b), `"worst":"fail"`) {
		t.Errorf("json %s", b)
	}
}

func TestBundle(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o700)
	var log strings.Builder
	for i := range 600 {
		fmt.Fprintf(&log, `{"msg":"card operation","serial":"80276%06d","line":%d}`+"\n", i, i)
	}
	os.WriteFile(filepath.Join(logs, "old.log"), []byte("old\n"), 0o600)
	past := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(logs, "old.log"), past, past)
	os.WriteFile(filepath.Join(logs, "cpsagent.log"), []byte(log.String()), 0o600)
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"allowOrigins":["https://portail.example.fr"]}`), 0o600)
	d := Deps{
		Readers: func(context.Context) ([]card.Reader, error) {
			return []card.Reader{{Name: "R", CardPresent: true, Card: cps3("1234567890")}}, nil
		},
		ConfigFile: cfg, LogDir: logs, StateDir: dir, PolicyPath: filepath.Join(dir, "none.json"),
		AgentURL: "https://127.0.0.1:1",
	}
	r := Run(t.Context(), d)
	out := filepath.Join(t.TempDir(), "bundle.zip")
	if err := WriteBundle(out, r, d); err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(out, r, d); err == nil {
		t.Fatal("an existing file was overwritten")
	}
	st, _ := os.Stat(out)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
	}
	for _, name := range []string{"report-fr.txt", "report-en.txt", "report.json", "config.json", "logs/cpsagent.log"} {
		if _, ok := files[name]; !ok {
			t.Errorf("bundle lacks %s (has %v)", name, len(files))
		}
	}
	logTail := files["logs/cpsagent.log"]
	if n := strings.Count(logTail, "\n"); n != LogTailLines {
		t.Errorf("%d log lines, want %d", n, LogTailLines)
	}
	all := strings.Join(func() []string {
		var v []string
		for _, s := range files {
			v = append(v, s)
		}
		return v
	}(), "\n")
	if strings.Contains(all, "1234567890") || strings.Contains(all, "80276000599") {
		t.Error("a serial number is not masked")
	}
	if !strings.Contains(files["report-en.txt"], "R: CPS3 *******890") || !strings.Contains(logTail, `"serial":"********599"`) {
		t.Errorf("masked forms missing:\n%s\n%s", files["report-en.txt"], logTail[len(logTail)-200:])
	}
}

func TestMain_CLI(t *testing.T) {
	var out, errb bytes.Buffer
	d := Deps{AgentURL: "https://127.0.0.1:1", PolicyPath: filepath.Join(t.TempDir(), "p.json")}
	err := Main(t.Context(), []string{"--lang", "en"}, &out, &errb, d)
	if err != nil && !errors.Is(err, ErrProblems) {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "cpsagent doctor — version") || !strings.Contains(out.String(), "Summary:") {
		t.Errorf("output %s", out.String())
	}
	out.Reset()
	if err := Main(t.Context(), []string{"--json"}, &out, &errb, d); err != nil && !errors.Is(err, ErrProblems) {
		t.Fatal(err)
	}
	var v map[string]any
	if json.Unmarshal(out.Bytes(), &v) != nil || v["checks"] == nil {
		t.Errorf("json output %s", out.String())
	}
	for _, bad := range [][]string{{"--lang", "de"}, {"extra"}, {"--nope"}} {
		if err := Main(t.Context(), bad, io.Discard, io.Discard, d); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	bundle := filepath.Join(t.TempDir(), "b.zip")
	errb.Reset()
	Main(t.Context(), []string{"--lang", "fr", "--bundle", bundle}, io.Discard, &errb, d)
	if _, err := os.Stat(bundle); err != nil || !strings.Contains(errb.String(), "Dossier de support écrit") {
		t.Fatalf("bundle: %v %s", err, errb.String())
	}
}

// TestQuirksCheck: the doctor says which card quirks the agent runs with,
// names what an administrator's quirks.json changes, and fails on a file
// the agent would refuse.
func TestQuirksCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "quirks.json")
	for _, tt := range []struct {
		name, file string // file "": absent
		status     Status
		key        i18n.Key
		mentions   string
	}{
		{"absent", "", OK, i18n.DoctorQuirksShipped, ""},
		{"same as shipped", `{"version": 1, "pinEncoding": "ascii"}`, OK, i18n.DoctorQuirksShipped, ""},
		{"changed", `{"version": 1, "pinEncoding": "bcd", "verifyP2Pin": "81"}`, OK, i18n.DoctorQuirksChanged, "pinEncoding"},
		{"unknown key", `{"version": 1, "pinEncodng": "bcd"}`, Fail, i18n.DoctorQuirksBad, "pinEncodng"},
		{"not JSON", `pinEncoding=bcd`, Fail, i18n.DoctorQuirksBad, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(path)
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c := checkQuirks(Deps{QuirksPath: path})
			if c.Status != tt.status || c.Detail.Key != tt.key {
				t.Fatalf("check = %s %s (%v), want %s %s", c.Status, c.Detail.Key, c.Detail.Args, tt.status, tt.key)
			}
			if tt.mentions != "" && !strings.Contains(fmt.Sprint(c.Detail.Args...), tt.mentions) {
				t.Errorf("detail %v does not mention %s", c.Detail.Args, tt.mentions)
			}
			if tt.status == Fail && c.Hint.Key != i18n.DoctorQuirksBadHint {
				t.Errorf("no hint: %+v", c.Hint)
			}
		})
	}
	if c := checkQuirks(Deps{}); c.Status != Skip {
		t.Errorf("no path: %s", c.Status)
	}
}

// TestBrowserPoliciesCheck: an allowed origin missing from an installed
// browser's policies is a warning with the command that fixes it; once
// `cpsagent browser-policies --write` ran, the check is OK.
func TestBrowserPoliciesCheck(t *testing.T) {
	root := t.TempDir()
	pol := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(pol, []byte(`{"allowOrigins":["https://www.dmp.fr"]}`), 0o644)
	d := Deps{PolicyPath: pol, AllowOrigins: []string{"https://portail.exemple-ght.fr:8443"}, BrowserPolicyRoot: root}

	if c := checkBrowserPolicies(Deps{PolicyPath: pol}, "linux"); c.Status != Skip || c.Detail.Key != i18n.DoctorNotChecked {
		t.Fatalf("no root: %+v", c)
	}
	if c := checkBrowserPolicies(d, "windows"); c.Status != Skip || c.Detail.Key != i18n.DoctorBrowserOtherOS {
		t.Fatalf("windows: %+v", c)
	}
	if c := checkBrowserPolicies(d, "linux"); c.Status != Skip || c.Detail.Key != i18n.DoctorBrowserNone {
		t.Fatalf("no browser: %+v", c)
	}
	os.MkdirAll(filepath.Join(root, "opt/google/chrome"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/firefox/policies"), 0o755)
	c := checkBrowserPolicies(d, "linux")
	if c.Status != Warn || c.Detail.Key != i18n.DoctorBrowserMissing || c.Hint.Key != i18n.DoctorBrowserHint ||
		!strings.Contains(c.Hint.In(i18n.EN), "cpsagent browser-policies --write") || !strings.Contains(c.Detail.In(i18n.FR), "2 site(s)") {
		t.Fatalf("missing: %+v", c)
	}
	if facts := strings.Join(c.Facts, "\n"); !strings.Contains(facts, "Google Chrome") || !strings.Contains(facts, "missing https://portail.exemple-ght.fr:8443, https://www.dmp.fr") {
		t.Fatalf("facts: %s", facts)
	}

	if _, err := browserpolicy.Write(root, []string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443"}); err != nil {
		t.Fatal(err)
	}
	c = checkBrowserPolicies(d, "linux")
	if c.Status != OK || c.Detail.Key != i18n.DoctorBrowserOK || !strings.Contains(c.Detail.In(i18n.EN), "2 allowed site(s) are pre-allowed in 2 browser(s)") {
		t.Fatalf("after --write: %+v", c)
	}
	// Run includes the check.
	if got := find(Run(t.Context(), d), "browser-policies"); got.Status == "" {
		t.Fatal("Run does not include the browser-policies check")
	}

	// A locked policy: only its origins are enforced, so only they count.
	os.WriteFile(pol, []byte(`{"allowOrigins":["https://www.dmp.fr"],"allowUserOrigins":false}`), 0o644)
	if c := checkBrowserPolicies(Deps{PolicyPath: pol, AllowOrigins: []string{"https://not-enforced.fr"}, BrowserPolicyRoot: root}, "linux"); c.Status != OK {
		t.Fatalf("locked: %+v", c)
	}
	os.WriteFile(pol, []byte(`{}`), 0o644)
	if c := checkBrowserPolicies(Deps{PolicyPath: pol, BrowserPolicyRoot: root}, "linux"); c.Status != OK || c.Detail.Key != i18n.DoctorBrowserNoOrigin {
		t.Fatalf("no origin: %+v", c)
	}
}
