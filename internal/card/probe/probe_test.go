package probe_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/probe"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// TestProbeConfirmsDefaults: on the virtual CPS3, whose behaviours are the
// agent's defaults, every fact a read-only probe can settle confirms the
// shipped quirks, the suggested quirks file is empty, and the card saw no
// VERIFY with data and no counter move.
func TestProbeConfirmsDefaults(t *testing.T) {
	for _, leg := range []struct {
		name string
		slot func(t *testing.T) *slot
	}{{"mem", memSlot}, {"pcscd", pcscSlot}} {
		t.Run(leg.name, func(t *testing.T) {
			s := leg.slot(t)
			trace := &syncBuffer{}
			c := newCard(t, virtual.Behaviour{}, trace)
			s.insert(t, c)
			statsBefore, pinsBefore := c.Stats(), c.PINStatus()
			r, err := probe.Run(context.Background(), s.tr, probe.Options{Reader: s.reader, Tool: "test"})
			if err != nil {
				t.Fatal(err)
			}
			checkNoSecretSent(t, c, trace, statsBefore, pinsBefore)
			if r.Reader != s.reader || r.Safety.Refused != 0 || r.Safety.Sent == 0 || r.Safety.Sent != len(r.Trace) {
				t.Fatalf("reader %q, safety %+v, %d trace lines", r.Reader, r.Safety, len(r.Trace))
			}
			seen := map[string]bool{}
			for _, f := range r.Facts {
				seen[f.ID] = true
				switch f.Verdict {
				case probe.Confirms, probe.Answered, probe.NotTestable:
				default:
					t.Errorf("fact %s: %s (%s)", f.ID, f.Verdict, f.Observed)
				}
				if len(f.Suggested) > 0 {
					t.Errorf("fact %s suggests %v", f.ID, f.Suggested)
				}
			}
			// Every quirks-file key is covered by a fact.
			for _, k := range cps.QuirksKeys() {
				if k == "version" || k == "comment" || k == "cps4" {
					continue
				}
				covered := false
				for _, f := range r.Facts {
					for _, fk := range f.Quirks {
						covered = covered || fk == k
					}
				}
				if !covered {
					t.Errorf("no fact covers the quirk %s", k)
				}
			}
			for _, id := range []string{"pin-encoding", "pin-padding", "verify-p2-pin", "puk-reference", "verify-in-mf",
				"certificate-paths", "app-df", "third-wrong-pin", "change-reference-p1", "empty-hash-tail", "select-clears-pin",
				"tries-without-consuming", "agent-read-path"} {
				if !seen[id] {
					t.Errorf("no fact %s", id)
				}
			}
			if len(r.Quirks.Changed) != 0 || string(r.Quirks.PolicyFile) != "{}" {
				t.Errorf("suggested changes %v, policy file %s", r.Quirks.Changed, r.Quirks.PolicyFile)
			}
			if !agentReadsOK(r, "in use") {
				t.Errorf("agent reads %+v", r.AgentReads)
			}
			checkMasked(t, r, c)
		})
	}
}

// checkNoSecretSent compares the virtual card's counters before and after,
// and scans its own trace for any command the probe must never send.
func checkNoSecretSent(t *testing.T, c *virtual.Card, trace *syncBuffer, before virtual.Stats, pins virtual.PINStatus) {
	t.Helper()
	d := c.Stats().Sub(before)
	if d.Verifies != 0 || d.WrongSecrets != 0 || d.PINChanges != 0 || d.Unblocks != 0 || d.Hashes != 0 ||
		d.Signatures != 0 || d.InternalAuths != 0 || d.Deciphers != 0 {
		t.Errorf("the card counted secret or key operations: %+v", d)
	}
	if d.APDUs == 0 {
		t.Error("the card saw no APDU")
	}
	if after := c.PINStatus(); after != pins {
		t.Errorf("PIN/PUK counters moved: %+v → %+v", pins, after)
	}
	lines := trace.lines()
	if v := commandsWithData(lines, "20"); len(v) > 0 {
		t.Errorf("VERIFY with data in the card trace: %q", v)
	}
	for _, l := range lines {
		i := strings.Index(l, " > ")
		if i < 0 {
			continue
		}
		f := strings.Fields(l[i+3:])
		if len(f) < 2 {
			continue
		}
		ins, err := hexByte(f[1])
		if err != nil {
			t.Fatalf("trace line %q", l)
		}
		if name, denied := probe.DeniedINS[ins]; denied {
			t.Errorf("the card received %s: %s", name, l)
		}
	}
}

func hexByte(s string) (byte, error) {
	b, err := hexDecode(s)
	if err != nil || len(b) != 1 {
		return 0, errors.New("not a byte")
	}
	return b[0], nil
}

func hexDecode(s string) ([]byte, error) {
	var out []byte
	for i := 0; i+1 < len(s); i += 2 {
		var v byte
		for _, c := range s[i : i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'A' && c <= 'F':
				v |= byte(c-'A') + 10
			default:
				return nil, errors.New("bad hex")
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// checkMasked: in the default (masked) report, neither the card number nor
// the holder's national id appears, in any encoding.
func checkMasked(t *testing.T, r *probe.Report, c *virtual.Card) {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	js := buf.String()
	serial := c.Serial()
	cfg := c.Config()
	for _, secret := range []string{serial, serial[:8], strings.ToUpper(serial), apdu.Hex(bcd(serial))} {
		if strings.Contains(js, secret) {
			t.Errorf("the masked report contains %q", secret)
		}
	}
	cert, err := x509.ParseCertificate(cfg.AuthCert)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range append([]string{cert.Subject.CommonName, cert.Subject.SerialNumber}, cert.Subject.Names[0].Value.(string)) {
		if len(v) >= 5 && strings.Contains(js, v) {
			t.Errorf("the masked report contains the holder's %q", v)
		}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "tool", "time", "reader", "masked", "safety", "atr", "files", "pkcs15", "chvs",
		"securityEnvironments", "keySdos", "agentReads", "facts", "quirks", "trace"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report without %q", k)
		}
	}
	for _, cr := range r.PKCS15.Certificates {
		if cr.Subject != "" {
			t.Errorf("certificate subject in a masked report: %s", cr.Subject)
		}
	}
}

func bcd(s string) []byte {
	out := make([]byte, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		out = append(out, (s[i]-'0')<<4|(s[i+1]-'0'))
	}
	return out
}

func TestProbeUnmasked(t *testing.T) {
	s := memSlot(t)
	c := newCard(t, virtual.Behaviour{}, nil)
	s.insert(t, c)
	r, err := probe.Run(context.Background(), s.tr, probe.Options{Unmasked: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Masked || r.Serial != c.Serial()[:8] {
		t.Fatalf("masked %v, serial %q", r.Masked, r.Serial)
	}
	subjects := 0
	for _, cr := range r.PKCS15.Certificates {
		if cr.Subject != "" {
			subjects++
		}
	}
	if subjects != 2 {
		t.Fatalf("%d certificate subjects in an unmasked report", subjects)
	}
}

// TestProbeOtherCards: a CPS4 and the contactless interface of a CPS3 (the
// virtual models of the CPS4 issue) are probed read-only too, and confirm
// the agent's tables; a card that is not a CPx gets no command at all. The
// CPS4 also runs through pcscd.
func TestProbeOtherCards(t *testing.T) {
	cps4Facts := []string{"cps4-applet", "certificate-paths", "cps4-key-references", "cps4-chv-references", "agent-read-path"}
	for _, tc := range []struct {
		model string
		pcscd bool
		facts []string
	}{
		{virtual.ModelCPS4, false, cps4Facts},
		{virtual.ModelCPS4, true, cps4Facts},
		{virtual.ModelCPS3CL, false, []string{"app-df", "certificate-paths", "agent-read-path"}},
		{virtual.ModelOther, false, []string{"atr"}},
	} {
		name, leg := tc.model+"/mem", memSlot
		if tc.pcscd {
			name, leg = tc.model+"/pcscd", pcscSlot
		}
		t.Run(name, func(t *testing.T) {
			cfg, err := virtual.Identity("medecin")
			if err != nil {
				t.Fatal(err)
			}
			trace := &syncBuffer{}
			cfg.Model, cfg.Trace = tc.model, trace
			cfg.Serial = fmt.Sprintf("%08d00", 30000000+serialSeq.Add(1))
			c, err := virtual.NewCard(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := leg(t)
			s.insert(t, c)
			before, pins := c.Stats(), c.PINStatus()
			r, err := probe.Run(context.Background(), s.tr, probe.Options{Reader: s.reader})
			if err != nil {
				t.Fatal(err)
			}
			other := tc.model == virtual.ModelOther
			if !other {
				checkNoSecretSent(t, c, trace, before, pins)
			} else if r.Safety.Sent != 0 || c.Stats().Sub(before).APDUs != 0 {
				t.Fatalf("%d commands sent to a card that is not a CPx", r.Safety.Sent)
			}
			got := map[string]string{}
			for _, f := range r.Facts {
				got[f.ID] = f.Verdict
				if !other && (f.Verdict == probe.Contradicts || f.Verdict == probe.Inconclusive) {
					t.Errorf("fact %s: %s (%s)", f.ID, f.Verdict, f.Observed)
				}
			}
			for _, id := range tc.facts {
				want := probe.Confirms
				if other {
					want = probe.Contradicts
				}
				if v, ok := got[id]; !ok || v != want {
					t.Errorf("fact %s: %q, want %s", id, v, want)
				}
			}
			if r.Safety.Refused != 0 || !other && string(r.Quirks.PolicyFile) != "{}" {
				t.Errorf("%d commands refused; policy file %s", r.Safety.Refused, r.Quirks.PolicyFile)
			}
		})
	}
}

func TestProbeReaders(t *testing.T) {
	tr := memreader.New("A", "B")
	ctx := context.Background()
	if _, err := probe.Run(ctx, tr, probe.Options{}); !errors.Is(err, card.ErrNoCard) {
		t.Fatalf("no card: %v", err)
	}
	if _, err := probe.Run(ctx, tr, probe.Options{Reader: "C"}); !errors.Is(err, card.ErrNoReader) {
		t.Fatalf("unknown reader: %v", err)
	}
	_ = tr.Insert("A", newCard(t, virtual.Behaviour{}, nil))
	_ = tr.Insert("B", newCard(t, virtual.Behaviour{}, nil))
	if _, err := probe.Run(ctx, tr, probe.Options{}); !errors.Is(err, card.ErrSeveralCards) {
		t.Fatalf("two cards: %v", err)
	}
	r, err := probe.Run(ctx, tr, probe.Options{Reader: "B"})
	if err != nil || r.Reader != "B" {
		t.Fatalf("named reader: %v", err)
	}
	var sum bytes.Buffer
	r.WriteSummary(&sum)
	for _, want := range []string{"fit this card", "{}", "third-wrong-pin", "not-testable"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary without %q:\n%s", want, sum.String())
		}
	}
}
