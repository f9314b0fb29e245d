package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpsagent/cpsagent/internal/browserpolicy"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
)

// What identifies the agent's answers (internal/api's AgentName and
// ProblemTypeBase; a test keeps them in step).
const (
	agentName       = "cpsagent"
	problemTypeBase = "https://cpsagent.github.io/problems/"
	// DefaultAgentURL is where the agent listens by default.
	DefaultAgentURL = "https://127.0.0.1:47180"
)

func checkCards(ctx context.Context, d Deps) []Check {
	pcsc := Check{ID: "pcsc", Title: msg(i18n.DoctorPCSCTitle)}
	readers := Check{ID: "readers", Title: msg(i18n.DoctorReadersTitle)}
	cards := Check{ID: "cards", Title: msg(i18n.DoctorCardsTitle)}
	excl := Check{ID: "exclusive", Title: msg(i18n.DoctorExclusiveTitle)}
	all := func() []Check { return []Check{pcsc, readers, cards, excl} }
	if d.Readers == nil {
		for _, c := range []*Check{&pcsc, &readers, &cards, &excl} {
			c.Status, c.Detail = Skip, msg(i18n.DoctorNotChecked)
		}
		return all()
	}
	list, err := withTimeout(ctx, 10*time.Second, d.Readers)
	if err != nil {
		pcsc.Status, pcsc.Detail, pcsc.Hint = Fail, msg(i18n.DoctorPCSCDown), msg(pcscHint())
		if !errors.Is(err, card.ErrPCSCUnavailable) {
			pcsc.Detail = msg(i18n.DoctorPCSCError, err)
		}
		for _, c := range []*Check{&readers, &cards, &excl} {
			c.Status, c.Detail = Skip, msg(i18n.DoctorNeedsPCSC)
		}
		return all()
	}
	pcsc.Status, pcsc.Detail = OK, msg(i18n.DoctorPCSCOK)

	if len(list) == 0 {
		readers.Status, readers.Detail, readers.Hint = Warn, msg(i18n.DoctorNoReader), msg(i18n.DoctorNoReaderHint)
	} else {
		readers.Status, readers.Detail = OK, msg(i18n.DoctorReadersOK, len(list))
		for _, r := range list {
			readers.Facts = append(readers.Facts, r.Name)
		}
	}

	var present []card.Reader
	unsupported := 0
	for _, r := range list {
		if !r.CardPresent {
			continue
		}
		present = append(present, r)
		f := r.Name + ": "
		if r.Card != nil {
			f += r.Card.Generation
			if r.Card.Serial != "" {
				f += " " + r.Card.Serial
			}
			if !r.Card.Supported {
				unsupported++
				f += " (" + i18n.T(i18n.EN, i18n.DoctorUnsupportedFact) + ")"
			}
		} else {
			f += "ATR " + r.ATR
		}
		cards.Facts = append(cards.Facts, f)
	}
	switch {
	case len(present) == 0:
		cards.Status, cards.Detail, cards.Hint = Warn, msg(i18n.DoctorNoCard), msg(i18n.DoctorNoCardHint)
	case unsupported == len(present):
		cards.Status, cards.Detail, cards.Hint = Warn, msg(i18n.DoctorUnsupported), msg(i18n.DoctorUnsupportedHint)
	case len(present)-unsupported > 1:
		cards.Status, cards.Detail, cards.Hint = Warn, msg(i18n.DoctorSeveralCards, len(present)-unsupported), msg(i18n.DoctorSeveralCardsHint)
	default:
		cards.Status, cards.Detail = OK, msg(i18n.DoctorCardsOK)
	}

	switch {
	case d.Begin == nil:
		excl.Status, excl.Detail = Skip, msg(i18n.DoctorNotChecked)
	case len(present) == 0:
		excl.Status, excl.Detail = Skip, msg(i18n.DoctorNoCardToProbe)
	default:
		excl.Status, excl.Detail = OK, msg(i18n.DoctorExclusiveOK)
		for _, r := range present {
			st, fact := probeShared(ctx, d, r.Name)
			if st == OK {
				continue
			}
			excl.Facts = append(excl.Facts, fact)
			if st == Fail || excl.Status == OK {
				excl.Status = st
			}
		}
		switch excl.Status {
		case Fail:
			excl.Detail, excl.Hint = msg(i18n.DoctorExclusiveHeld), msg(i18n.DoctorExclusiveHint)
		case Warn:
			excl.Detail, excl.Hint = msg(i18n.DoctorExclusiveBusy), msg(i18n.DoctorExclusiveHint)
		}
	}
	return all()
}

// probeShared opens and closes a shared session on the card. A sharing
// violation means another program connected to the card exclusively; a
// session that does not open in 3 s means another program keeps a long
// transaction on it.
func probeShared(ctx context.Context, d Deps, reader string) (Status, string) {
	s, err := withTimeout(ctx, 3*time.Second, func(ctx context.Context) (card.Session, error) {
		s, err := d.Begin(ctx, reader)
		if err == nil && ctx.Err() != nil { // too late: nobody will end it
			_ = s.End(false)
			return nil, ctx.Err()
		}
		return s, err
	})
	if err == nil {
		_ = s.End(false)
		return OK, ""
	}
	switch {
	case isSharingViolation(err):
		return Fail, reader + ": " + err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, card.ErrBusy):
		return Warn, reader + ": " + err.Error()
	case errors.Is(err, card.ErrNoCard), errors.Is(err, card.ErrCardRemoved):
		return OK, ""
	default:
		return Warn, reader + ": " + err.Error()
	}
}

// withTimeout runs f with a deadline and returns at the deadline even if f
// ignores its context (a PC/SC call stuck in the service); f then finishes
// in the background.
func withTimeout[T any](ctx context.Context, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// isSharingViolation recognises SCARD_E_SHARING_VIOLATION through the
// transport's wrapping (pcsc-lite: "Sharing violation.", WinSCard: "The smart
// card cannot be accessed because of other connections outstanding.").
func isSharingViolation(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "sharing violation") || strings.Contains(s, "other connections outstanding")
}

func pcscHint() i18n.Key {
	switch runtime.GOOS {
	case "windows":
		return i18n.DoctorPCSCHintWindows
	case "darwin":
		return i18n.DoctorPCSCHintMac
	default:
		return i18n.DoctorPCSCHintLinux
	}
}

// checkAgent asks the agent's /v1/status and tells who answers.
func checkAgent(ctx context.Context, d Deps) Check {
	c := Check{ID: "agent", Title: msg(i18n.DoctorAgentTitle)}
	base := d.AgentURL
	if base == "" {
		base = DefaultAgentURL
	}
	u, err := url.Parse(base)
	if err != nil {
		c.Status, c.Detail = Fail, msg(i18n.DoctorAgentError, err)
		return c
	}
	port, _ := strconv.Atoi(u.Port())
	c.Facts = append(c.Facts, base)
	owner := func() {
		if o := d.PortOwner(port); o != "" {
			c.Facts = append(c.Facts, i18n.T(i18n.EN, i18n.DoctorPortOwnerFact, port, o))
		}
	}
	pool := x509.NewCertPool()
	haveCA := false
	if d.TLSDir != "" {
		if b, err := os.ReadFile(filepath.Join(d.TLSDir, "ca.pem")); err == nil {
			haveCA = pool.AppendCertsFromPEM(b)
		}
	}
	get := func(insecure bool) (*http.Response, []byte, error) {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}, //nolint:gosec // only to identify a squatter
			Proxy:           nil,
		}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/status", nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp, body, err
	}
	resp, body, err := get(!haveCA)
	var certErr *tls.CertificateVerificationError
	switch {
	case err != nil && errors.Is(err, syscall.ECONNREFUSED):
		c.Status, c.Detail, c.Hint = Warn, msg(i18n.DoctorAgentDown), msg(i18n.DoctorAgentDownHint)
		return c
	case err != nil && errors.As(err, &certErr):
		// Someone answers with a certificate our CA did not issue.
		resp2, body2, err2 := get(true)
		owner()
		if err2 == nil && isAgentAnswer(resp2, body2) {
			c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorAgentOtherCA), msg(i18n.DoctorAgentOtherCAHint)
		} else {
			c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorPortSquatted), msg(i18n.DoctorPortSquattedHint)
		}
		return c
	case err != nil && isTLSMismatch(err):
		owner()
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorPortSquatted), msg(i18n.DoctorPortSquattedHint)
		return c
	case err != nil:
		c.Status, c.Detail, c.Hint = Warn, msg(i18n.DoctorAgentError, err), msg(i18n.DoctorAgentDownHint)
		return c
	}
	if !isAgentAnswer(resp, body) {
		owner()
		c.Facts = append(c.Facts, fmt.Sprintf("HTTP %d, Server: %q", resp.StatusCode, resp.Header.Get("Server")))
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorPortSquatted), msg(i18n.DoctorPortSquattedHint)
		return c
	}
	var st struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(body, &st)
	if st.Version != "" {
		c.Facts = append(c.Facts, "version "+st.Version)
	}
	c.Status, c.Detail = OK, msg(i18n.DoctorAgentOK)
	if !haveCA {
		c.Status, c.Hint = Warn, msg(i18n.DoctorNoCAHint)
		c.Detail = msg(i18n.DoctorAgentNoCA)
	}
	return c
}

// isTLSMismatch: the port speaks something else than TLS (plain HTTP
// server of another program).
func isTLSMismatch(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "first record does not look like a TLS handshake") ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// isAgentAnswer: /v1/status of cpsagent (200 with "agent":"cpsagent"), or
// its origin gate refusing the doctor (a problem document of cpsagent).
func isAgentAnswer(resp *http.Response, body []byte) bool {
	var v struct {
		Agent string `json:"agent"`
		Type  string `json:"type"`
	}
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	return resp.StatusCode == http.StatusOK && v.Agent == agentName ||
		resp.StatusCode >= 400 && strings.HasPrefix(v.Type, problemTypeBase)
}

// checkTLS reads the agent's certificate and CA.
func checkTLS(d Deps) Check {
	c := Check{ID: "tls", Title: msg(i18n.DoctorTLSTitle)}
	if d.TLSDir == "" {
		c.Status, c.Detail = Skip, msg(i18n.DoctorNotChecked)
		return c
	}
	now := d.Now()
	ca, errCA := readCert(filepath.Join(d.TLSDir, "ca.pem"))
	leaf, errLeaf := readCert(filepath.Join(d.TLSDir, "cert.pem"))
	if errors.Is(errCA, os.ErrNotExist) || errors.Is(errLeaf, os.ErrNotExist) {
		c.Status, c.Detail, c.Hint = Warn, msg(i18n.DoctorTLSMissing, d.TLSDir), msg(i18n.DoctorTLSMissingHint)
		return c
	}
	if err := errors.Join(errCA, errLeaf); err != nil {
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorTLSUnreadable, err), msg(i18n.DoctorTLSMissingHint)
		return c
	}
	c.Facts = append(c.Facts,
		fmt.Sprintf("CA %q, %s → %s", ca.Subject.CommonName, ca.NotBefore.Format(time.DateOnly), ca.NotAfter.Format(time.DateOnly)),
		fmt.Sprintf("cert %v %v, %s → %s", leaf.DNSNames, leaf.IPAddresses, leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly)))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, verr := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, DNSName: "localhost",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	ipOK := false
	for _, ip := range leaf.IPAddresses {
		if ip.Equal(net.IPv4(127, 0, 0, 1)) {
			ipOK = true
		}
	}
	switch {
	case now.After(leaf.NotAfter) || now.After(ca.NotAfter):
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorTLSExpired, leaf.NotAfter.Format(time.DateOnly)), msg(i18n.DoctorTLSRenewHint)
	case verr != nil || !ipOK:
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorTLSInvalid, fmt.Sprint(verr)), msg(i18n.DoctorTLSRenewHint)
	case leaf.NotAfter.Sub(now) < 30*24*time.Hour:
		c.Status, c.Detail, c.Hint = Warn, msg(i18n.DoctorTLSSoon, leaf.NotAfter.Format(time.DateOnly)), msg(i18n.DoctorTLSRenewHint)
	default:
		c.Status, c.Detail = OK, msg(i18n.DoctorTLSOK, leaf.NotAfter.Format(time.DateOnly))
		c.Hint = msg(i18n.DoctorTLSTrustHint, filepath.Join(d.TLSDir, "ca.pem"))
	}
	return c
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func checkConfig(d Deps) Check {
	c := Check{ID: "config", Title: msg(i18n.DoctorConfigTitle)}
	file := d.ConfigFile
	if file == "" {
		file = "-"
	}
	c.Facts = append(c.Facts, "file: "+file)
	for _, o := range d.AllowOrigins {
		c.Facts = append(c.Facts, "allowOrigins: "+o)
	}
	if d.StateDir != "" {
		c.Facts = append(c.Facts, "stateDir: "+d.StateDir)
		if b, err := os.ReadFile(filepath.Join(d.StateDir, consent.StoreFile)); err == nil {
			var sf struct {
				Always []consent.Grant `json:"alwaysAllowed"`
			}
			if json.Unmarshal(b, &sf) == nil {
				for _, g := range sf.Always {
					c.Facts = append(c.Facts, "alwaysAllowed: "+g.Origin)
				}
			}
		}
	}
	switch {
	case d.ConfigErr != nil:
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorConfigError, d.ConfigErr), msg(i18n.DoctorConfigHint)
	case len(d.AllowOrigins) == 0:
		c.Status, c.Detail = OK, msg(i18n.DoctorConfigNoOrigin)
	default:
		c.Status, c.Detail = OK, msg(i18n.DoctorConfigOK, len(d.AllowOrigins))
	}
	return c
}

// checkQuirks reports which card quirks the agent runs with: the built-in
// ones, or the administrator's quirks.json (what it changes), or a file the
// agent would refuse (serve exits on it).
func checkQuirks(d Deps) Check {
	c := Check{ID: "quirks", Title: msg(i18n.DoctorQuirksTitle)}
	if d.QuirksPath == "" {
		c.Status = Skip
		return c
	}
	c.Facts = append(c.Facts, "file: "+d.QuirksPath)
	q, src, err := cps.LoadQuirks(d.QuirksPath)
	if err != nil {
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorQuirksBad, err), msg(i18n.DoctorQuirksBadHint)
		return c
	}
	shipped, err := cps.ShippedQuirks()
	changed := cps.DiffQuirks(shipped, q)
	if err != nil || src != d.QuirksPath || len(changed) == 0 {
		c.Status, c.Detail = OK, msg(i18n.DoctorQuirksShipped)
		return c
	}
	c.Status, c.Detail = OK, msg(i18n.DoctorQuirksChanged, len(changed), strings.Join(changed, ", "))
	return c
}

func checkPolicy(d Deps) Check {
	c := Check{ID: "policy", Title: msg(i18n.DoctorPolicyTitle)}
	path := d.PolicyPath
	if path == "" {
		path = consent.DefaultPolicyPath()
	}
	c.Facts = append(c.Facts, "file: "+path)
	p, err := consent.LoadPolicy(path)
	switch {
	case err != nil:
		c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorPolicyBad, err), msg(i18n.DoctorPolicyBadHint)
		return c
	case !p.Present:
		c.Status, c.Detail = OK, msg(i18n.DoctorPolicyNone)
		return c
	}
	for _, o := range p.AllowedOrigins {
		c.Facts = append(c.Facts, "allowOrigins: "+o)
	}
	for _, o := range p.DeniedOrigins {
		c.Facts = append(c.Facts, "denyOrigins: "+o)
	}
	c.Facts = append(c.Facts, fmt.Sprintf("allowUserOrigins: %v", p.UserAdditionsAllowed()))
	c.Status, c.Detail = OK, msg(i18n.DoctorPolicyOK, len(p.AllowedOrigins), len(p.DeniedOrigins))
	if !p.UserAdditionsAllowed() {
		c.Detail = msg(i18n.DoctorPolicyLocked, len(p.AllowedOrigins), len(p.DeniedOrigins))
	}
	return c
}

// checkPinentry looks for the program that shows PIN and consent dialogs.
func checkPinentry(d Deps) Check {
	c := Check{ID: "pinentry", Title: msg(i18n.DoctorPinentryTitle)}
	getenv := d.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	candidates := []string{d.Pinentry}
	if d.Pinentry == "" {
		switch runtime.GOOS {
		case "windows":
			candidates = []string{"pinentry.exe", `C:\Program Files (x86)\Gpg4win\bin\pinentry.exe`, `C:\Program Files\Gpg4win\bin\pinentry.exe`}
		case "darwin":
			candidates = []string{"pinentry-mac", "/opt/homebrew/bin/pinentry-mac", "/usr/local/bin/pinentry-mac"}
		default:
			if getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != "" {
				candidates = []string{"pinentry-gnome3", "pinentry-gtk-2", "pinentry-qt", "pinentry"}
			} else {
				candidates = []string{"pinentry-curses", "pinentry-tty", "pinentry"}
			}
		}
	}
	for _, n := range candidates {
		if p, err := exec.LookPath(n); err == nil {
			c.Status, c.Detail = OK, msg(i18n.DoctorPinentryOK, p)
			return c
		}
	}
	c.Status, c.Detail, c.Hint = Fail, msg(i18n.DoctorPinentryMissing, strings.Join(candidates, ", ")), msg(i18n.DoctorPinentryHint)
	return c
}

// checkBrowserPolicies tells whether the browsers installed on this Linux
// machine pre-allow the allowed origins (machine policy and configuration)
// through their Local Network Access policies; otherwise each portal's
// first call to the agent brings a browser prompt.
func checkBrowserPolicies(d Deps, goos string) Check {
	c := Check{ID: "browser-policies", Title: msg(i18n.DoctorBrowserTitle)}
	switch {
	case d.BrowserPolicyRoot == "":
		c.Status, c.Detail = Skip, msg(i18n.DoctorNotChecked)
		return c
	case goos != "linux":
		c.Status, c.Detail = Skip, msg(i18n.DoctorBrowserOtherOS)
		return c
	}
	path := d.PolicyPath
	if path == "" {
		path = consent.DefaultPolicyPath()
	}
	p, err := consent.LoadPolicy(path)
	if err != nil { // the policy check reports it
		c.Status, c.Detail = Skip, msg(i18n.DoctorNotChecked)
		return c
	}
	origins, oerr := browserpolicy.Enforced(p, d.AllowOrigins)
	if oerr != nil {
		c.Facts = append(c.Facts, oerr.Error())
	}
	if len(origins) == 0 {
		c.Status, c.Detail = OK, msg(i18n.DoctorBrowserNoOrigin)
		return c
	}
	rep, _ := browserpolicy.Check(d.BrowserPolicyRoot, origins)
	c.Facts = append(c.Facts, rep.Facts()...)
	switch {
	case rep.Checked() == 0:
		c.Status, c.Detail = Skip, msg(i18n.DoctorBrowserNone)
	case rep.Missing():
		missing := map[string]bool{}
		for _, b := range rep.Browsers {
			for _, o := range b.Missing {
				missing[o] = true
			}
		}
		c.Status, c.Detail, c.Hint = Warn, msg(i18n.DoctorBrowserMissing, len(missing)), msg(i18n.DoctorBrowserHint)
	default:
		c.Status, c.Detail = OK, msg(i18n.DoctorBrowserOK, len(origins), rep.Checked())
	}
	return c
}
