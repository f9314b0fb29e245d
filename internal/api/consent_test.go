package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

// managerConsent adapts consent.Manager to the gate, as serve does.
type managerConsent struct{ *consent.Manager }

func (m managerConsent) Allowed(origin string) bool {
	s := m.Lookup(origin)
	return s != consent.SourceNone && s != consent.SourceDenied
}

// consentHarness is the API behind the real consent manager, whose dialogs
// go through the real pinentry client to the scripted fake pinentry in
// mode (FAKE_PINENTRY_MODE). testOrigin is on the static allow-list.
func consentHarness(t *testing.T, mode string) (*harness, func() (confirms int, descs string)) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the scripted pinentry is a POSIX sh script")
	}
	log := filepath.Join(t.TempDir(), "consent-pinentry.log")
	client := pinentry.New(pinentry.Config{
		Program:         pinentrytest.Path(),
		Env:             pinentrytest.Options{Mode: mode, LogFile: log}.Env(),
		MinConfirmDelay: -1, // the script answers at once
	})
	m, err := consent.New(consent.Config{StateDir: t.TempDir(), Static: []string{testOrigin}, Prompter: client, Lang: i18n.FR})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOpts{options: func(o *Options) { o.Consent = managerConsent{m} }})
	return h, func() (int, string) {
		lines, err := pinentrytest.ReadLog(log)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range lines {
			if l == "CONFIRM" {
				n++
			}
		}
		return n, strings.Join(lines, "\n")
	}
}

// TestConsentDialogThroughTheGate: an unknown origin gets the consent
// dialog only from a request that could succeed once allowed; a burst
// opens one dialog; "allow once" then covers its preflights; the statically
// allowed origin never sees a dialog.
func TestConsentDialogThroughTheGate(t *testing.T) {
	h, dialogs := consentHarness(t, pinentrytest.ModeConfirmOK)
	const newcomer = "https://nouveau.example.fr"

	// Requests that fail anyway never open a dialog, and learn nothing.
	hopeless := []struct {
		method, path, body string
		hdr                []string
	}{
		{http.MethodGet, "/v1/nope", "", nil},
		{http.MethodGet, "/", "", nil},
		{http.MethodPost, "/v1/status", validSign, nil},
		{http.MethodDelete, "/v1/sign", "", nil},
		{http.MethodHead, "/v1/status", "", nil},
		{http.MethodOptions, "/v1/sign", "", nil}, // not a preflight
		{http.MethodOptions, "/v1/sign", "", []string{"Access-Control-Request-Method", "GET"}},
		{http.MethodOptions, "/v1/apdu", "", []string{"Access-Control-Request-Method", "POST"}},
		{http.MethodGet, "/v1/events", "", nil}, // not a WebSocket upgrade
		{http.MethodGet, "/v1/events", "", []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "8"}},
		{http.MethodPost, "/v1/sign", validSign, []string{"Content-Type", "text/plain"}},
		{http.MethodPost, "/v1/sign", validSign, []string{"X-HTTP-Method-Override", "GET"}},
		{http.MethodGet, "/v1/status?callback=f", "", nil},
		{http.MethodGet, "/v1/card?reader=a&reader=b", "", nil},
	}
	for _, c := range hopeless {
		w := h.do(c.method, c.path, c.body, append([]string{"Origin", newcomer}, c.hdr...)...)
		problemOf(t, w, 403, CodeOriginNotAllowed)
		noCORS(t, w.Header())
	}
	big := req(http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+strings.Repeat("A", MaxSmallBody)+`"}`, "Origin", newcomer)
	problemOf(t, h.serve(big), 403, CodeOriginNotAllowed)
	// Nor does a request that fails the Host check, or has no usable Origin.
	problemOf(t, h.do(http.MethodGet, "/v1/status", "", "Origin", newcomer, "Host", "evil.example:47180"), 421, CodeHostNotAllowed)
	for _, o := range []string{"-", "null", newcomer + "/", strings.ToUpper(newcomer) + "."} {
		problemOf(t, h.do(http.MethodGet, "/v1/status", "", "Origin", o), 403, CodeOriginNotAllowed)
	}
	if n, log := dialogs(); n != 0 {
		t.Fatalf("%d consent dialog(s) for requests that could not succeed:\n%s", n, log)
	}

	// A burst of page requests from the newcomer: one dialog, all allowed.
	var wg sync.WaitGroup
	codes := make([]int, 10)
	acao := make([]string, 10)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := h.do(http.MethodGet, "/v1/status", "", "Origin", newcomer)
			codes[i], acao[i] = w.Code, w.Header().Get("Access-Control-Allow-Origin")
		}()
	}
	wg.Wait()
	for i := range codes {
		if codes[i] != 200 || acao[i] != newcomer {
			t.Fatalf("request %d: %d, ACAO %q", i, codes[i], acao[i])
		}
	}
	n, log := dialogs()
	if n != 1 {
		t.Fatalf("%d consent dialogs for one burst, want 1:\n%s", n, log)
	}
	if !strings.Contains(log, newcomer) {
		t.Fatalf("the dialog does not name %s:\n%s", newcomer, log)
	}

	// Allowed once: its preflight and the statically allowed origin pass
	// without another dialog.
	w := h.do(http.MethodOptions, "/v1/sign", "", "Origin", newcomer, "Access-Control-Request-Method", "POST")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != newcomer {
		t.Fatalf("preflight after consent: %d %v", w.Code, w.Header())
	}
	if w := h.do(http.MethodGet, "/v1/status", ""); w.Code != 200 {
		t.Fatalf("static origin: %d", w.Code)
	}
	// Once allowed, the usual answers come back (not a blanket 403).
	problemOf(t, h.do(http.MethodGet, "/v1/nope", "", "Origin", newcomer), 404, CodeNotFound)
	if n, _ := dialogs(); n != 1 {
		t.Fatalf("%d dialogs, want still 1", n)
	}
	h.assertUntouched(t)
}

// TestConsentRefusedPreflight: the holder refuses the dialog a preflight
// opened; the preflight and the request after it get 403 without CORS
// headers, and no second dialog opens during the cooldown.
func TestConsentRefusedPreflight(t *testing.T) {
	h, dialogs := consentHarness(t, pinentrytest.ModeConfirmCancel)
	const stranger = "https://inconnu.example"
	w := h.do(http.MethodOptions, "/v1/sign", "", "Origin", stranger, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Private-Network", "true")
	problemOf(t, w, 403, CodeOriginNotAllowed)
	noCORS(t, w.Header())
	w = h.do(http.MethodPost, "/v1/sign", validSign, "Origin", stranger)
	problemOf(t, w, 403, CodeOriginNotAllowed)
	noCORS(t, w.Header())
	if n, log := dialogs(); n != 1 {
		t.Fatalf("%d dialogs, want 1 (then the refusal cooldown):\n%s", n, log)
	}
	h.assertUntouched(t)
}

// countingCards counts the identity reads that reach the card service.
type countingCards struct {
	CardService
	reads atomic.Int32
}

func (c *countingCards) Card(ctx context.Context, reader string) (*card.CardData, error) {
	c.reads.Add(1)
	return c.CardService.Card(ctx, reader)
}

// consentProbe answers the consent dialog with answer, and records what it
// was asked and how many identity reads had happened by then.
type consentProbe struct {
	pinentry.Prompter
	answer pinentry.Decision
	cards  *countingCards
	mu     sync.Mutex
	asked  []pinentry.ConfirmRequest
	before []int32 // identity reads done when each dialog opened
}

func (p *consentProbe) Confirm(_ context.Context, c pinentry.ConfirmRequest) (pinentry.Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, c)
	p.before = append(p.before, p.cards.reads.Load())
	return p.answer, nil
}

// TestSec37_IdentityReadNeedsConsent (security.md §6 item 37): GET
// /v1/card (holder identity and certificates) from an origin the holder
// has not answered for yet opens the consent dialog, naming that origin,
// before the card is read; a refusal, the machine policy's denyOrigins,
// or a policy that allows no other origin answer 403 without CORS headers
// and without reading the card (no dialog for the policy cases). An
// origin of the configuration's allow-list was consented by whoever wrote
// it (the user or the administrator): no dialog.
func TestSec37_IdentityReadNeedsConsent(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		name, origin string
		policy       string // machine policy JSON, "" for none
		answer       pinentry.Decision
		status       int
		dialogs      int
		display      string // what the dialog shows first for the origin
	}{
		{"new origin, allowed once", "https://nouveau.example.fr", "", pinentry.AllowOnce, 200, 1, "https://nouveau.example.fr"},
		{"new IDN origin, always allowed", "https://xn--caf-dma.example", "", pinentry.AllowAlways, 200, 1, "https://café.example"},
		{"new origin, refused", "https://inconnu.example", "", pinentry.Refuse, 403, 1, ""},
		{"denied by the machine policy", "https://evil.example", `{"denyOrigins":["https://evil.example"]}`, pinentry.AllowAlways, 403, 0, ""},
		{"the policy allows no other origin", "https://nouveau.example.fr", `{"allowOrigins":["https://portal.test"],"allowUserOrigins":false}`, pinentry.AllowAlways, 403, 0, ""},
		{"on the configuration's allow-list", testOrigin, "", pinentry.Refuse, 200, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pol consent.Policy
			if tt.policy != "" {
				var err error
				if pol, err = consent.ParsePolicy([]byte(tt.policy)); err != nil {
					t.Fatal(err)
				}
			}
			cards := &countingCards{CardService: h.eng}
			probe := &consentProbe{Prompter: h.prompter, answer: tt.answer, cards: cards}
			m, err := consent.New(consent.Config{StateDir: t.TempDir(), Static: []string{testOrigin}, Policy: pol, Prompter: probe, Lang: i18n.FR})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(Options{Consent: managerConsent{m}, Ports: []int{47180}, Version: "test"}, cards, h.prompter)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			for i := range 2 { // the second read asks nothing new
				w := httptest.NewRecorder()
				srv.Handler().ServeHTTP(w, req(http.MethodGet, "/v1/card", "", "Origin", tt.origin))
				securityHeaders(t, w.Header())
				if tt.status != 200 {
					problemOf(t, w, tt.status, CodeOriginNotAllowed)
					noCORS(t, w.Header())
				} else if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != tt.origin {
					t.Fatalf("read %d: %d, ACAO %q: %s", i, w.Code, w.Header().Get("Access-Control-Allow-Origin"), w.Body)
				}
			}
			probe.mu.Lock()
			defer probe.mu.Unlock()
			if len(probe.asked) != tt.dialogs {
				t.Fatalf("%d consent dialogs, want %d", len(probe.asked), tt.dialogs)
			}
			wantReads := int32(0)
			if tt.status == 200 {
				wantReads = 2
			}
			if n := cards.reads.Load(); n != wantReads {
				t.Fatalf("%d identity reads, want %d", n, wantReads)
			}
			for i, c := range probe.asked {
				if c.Origin != tt.origin || probe.before[i] != 0 {
					t.Fatalf("dialog %d for %q after %d reads", i, c.Origin, probe.before[i])
				}
				if d := pinentry.ConfirmTexts(c).Description; tt.display != "" && !strings.Contains(d, "\n    "+tt.display+"\n") {
					t.Errorf("the dialog does not show %s:\n%s", tt.display, d)
				}
			}
		})
	}
	h.assertUntouched(t)
}
