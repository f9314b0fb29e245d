package probe_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/probe"
)

// recorder is the card behind a guard: it records what reaches it.
type recorder struct {
	mu   sync.Mutex
	seen [][]byte
}

func (r *recorder) Transmit(cmd []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, append([]byte(nil), cmd...))
	return []byte{0x63, 0xC3}, nil
}

// TestGuardRefusesSecretsAndWrites sends every instruction in every APDU
// case (and with every class) through the guard: no deny-listed
// instruction, no VERIFY with data, no instruction outside the allow-list,
// no chained, secure-messaging or proprietary command reaches the card.
func TestGuardRefusesSecretsAndWrites(t *testing.T) {
	shapes := map[string]func(cla, ins byte) []byte{
		"case 1":          func(cla, ins byte) []byte { return []byte{cla, ins, 0x00, 0x01} },
		"case 2":          func(cla, ins byte) []byte { return []byte{cla, ins, 0x00, 0x01, 0x10} },
		"case 2 Le 00":    func(cla, ins byte) []byte { return []byte{cla, ins, 0x00, 0x01, 0x00} },
		"case 3 (PIN)":    func(cla, ins byte) []byte { return []byte{cla, ins, 0x00, 0x01, 0x04, '1', '2', '3', '4'} },
		"case 4":          func(cla, ins byte) []byte { return []byte{cla, ins, 0x00, 0x01, 0x02, 0x3F, 0x00, 0x00} },
		"case 3 (PUK 82)": func(cla, ins byte) []byte { return []byte{cla, ins, 0x00, 0x82, 0x08, 1, 2, 3, 4, 5, 6, 7, 8} },
		"header only":     func(cla, ins byte) []byte { return []byte{cla, ins, 0x00} },
	}
	for _, cla := range []byte{0x00, 0x01, 0x03, 0x0C, 0x10, 0x11, 0x80, 0x84, 0x90, 0xA0, 0xFF} {
		for name, shape := range shapes {
			for i := 0; i < 256; i++ {
				ins := byte(i)
				rec := &recorder{}
				g := probe.NewGuard(rec)
				cmd := shape(cla, ins)
				_, err := g.Transmit(cmd)
				reached := len(rec.seen) == 1
				if reached == (err != nil) {
					t.Fatalf("%02X %02X %s: reached %v, error %v", cla, ins, name, reached, err)
				}
				if err != nil && !errors.Is(err, probe.ErrRefused) {
					t.Fatalf("%02X %02X %s: error %v is not ErrRefused", cla, ins, name, err)
				}
				if !reached {
					if sent, refused := g.Counts(); sent != 0 || refused != 1 {
						t.Fatalf("counts %d/%d", sent, refused)
					}
					continue
				}
				// What got through: an allowed instruction, read-only form.
				what, allowed := probe.AllowedINS[ins]
				_, denied := probe.DeniedINS[ins]
				switch {
				case !allowed || denied:
					t.Errorf("%02X %02X %s reached the card (%s)", cla, ins, name, what)
				case cla&0x80 != 0 || cla&0x1C != 0:
					t.Errorf("class %02X reached the card", cla)
				case ins == apdu.InsVerify && len(cmd) > 4 && !(len(cmd) == 5 && cmd[4] == 0):
					t.Errorf("VERIFY with data reached the card: % X", cmd)
				case ins == 0x70 && cmd[2] != 0x00:
					t.Errorf("MANAGE CHANNEL other than open: % X", cmd)
				}
			}
		}
	}
	// Every instruction the brief names is on the deny-list.
	for _, ins := range []byte{apdu.InsChangeReferenceData, apdu.InsResetRetryCounter, apdu.InsPerformSecurityOp,
		apdu.InsInternalAuthenticate, apdu.InsManageSecurityEnv, 0xD6, 0xD0, 0xDA, 0xDC, 0xE0, 0xE4, 0x0E} {
		if _, ok := probe.DeniedINS[ins]; !ok {
			t.Errorf("INS %02X is not on the deny-list", ins)
		}
		if _, ok := probe.AllowedINS[ins]; ok {
			t.Errorf("INS %02X is allowed", ins)
		}
	}
}

// TestGuardBoundsStatusQueries: VERIFY without data goes through, at most
// four times per reference, and never with a PIN.
func TestGuardBoundsStatusQueries(t *testing.T) {
	rec := &recorder{}
	g := probe.NewGuard(rec)
	for i := range 6 {
		_, err := g.Transmit([]byte{0x00, 0x20, 0x00, 0x01})
		if (i < 4) != (err == nil) {
			t.Fatalf("status query %d: %v", i+1, err)
		}
	}
	if _, err := g.Transmit([]byte{0x00, 0x20, 0x00, 0x81, 0x00}); err != nil {
		t.Fatalf("another reference (T=0 header form): %v", err)
	}
	if _, err := g.Transmit([]byte{0x00, 0x20, 0x00, 0x02, 0x04, '1', '2', '3', '4'}); err == nil {
		t.Fatal("VERIFY with data sent")
	}
	if len(rec.seen) != 5 {
		t.Fatalf("%d commands reached the card", len(rec.seen))
	}
	log := g.Log()
	if len(log) != 8 || log[7].Refused == "" || strings.Contains(log[7].Command, "31 32 33 34") {
		t.Fatalf("log %+v", log)
	}
}

// TestProbeNeverUsesSecretCommands: the probe's code never calls the
// command functions that present a secret, change a counter or use a key,
// nor the profile operations that do (the guard would refuse them anyway).
func TestProbeNeverUsesSecretCommands(t *testing.T) {
	forbidden := map[string]bool{
		"iasecc.Verify": true, "iasecc.ChangeReferenceData": true, "iasecc.ChangeReferenceDataNewOnly": true,
		"iasecc.ResetRetryCounter": true, "iasecc.MSESetAT": true, "iasecc.MSESetHT": true, "iasecc.MSESetDST": true,
		"iasecc.MSESetCT": true, "iasecc.PSOHash": true, "iasecc.PSOComputeDigitalSignature": true,
		"iasecc.PSOComputeDigitalSignatureOfHash": true, "iasecc.InternalAuthenticate": true,
		"apdu.InsChangeReferenceData": true, "apdu.InsResetRetryCounter": true, "apdu.InsPerformSecurityOp": true,
		"apdu.InsInternalAuthenticate": true, "apdu.InsManageSecurityEnv": true,
	}
	forbiddenMethods := map[string]bool{"Authenticate": true, "Sign": true, "ChangePIN": true, "Unblock": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		n++
		ast.Inspect(f, func(node ast.Node) bool {
			sel, ok := node.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && forbidden[id.Name+"."+sel.Sel.Name] {
				t.Errorf("%s: the probe uses %s.%s", fset.Position(sel.Pos()), id.Name, sel.Sel.Name)
			}
			if forbiddenMethods[sel.Sel.Name] {
				t.Errorf("%s: the probe calls .%s", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	if n < 5 {
		t.Fatalf("only %d source files inspected", n)
	}
}

// scriptCard answers with bytes from a fuzz input: the probe must never
// panic and never try a forbidden command, whatever the card says.
type scriptCard struct {
	mu   sync.Mutex
	atr  []byte
	data []byte
}

func (c *scriptCard) ATR() []byte { return c.atr }
func (c *scriptCard) Reset()      {}
func (c *scriptCard) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.data) < 2 {
		return []byte{0x6A, 0x82}, nil
	}
	n := int(c.data[0]) % 40
	if n+3 > len(c.data) {
		n = len(c.data) - 3
	}
	resp := append([]byte(nil), c.data[1:n+3]...)
	c.data = c.data[n+3:]
	return resp, nil
}

func FuzzProbeCard(f *testing.F) {
	f.Add(uint8(0), []byte{0x02, 0x90, 0x00, 0x61, 0x10})
	f.Add(uint8(1), []byte("\x0a\x70\x08\xbf\x81\x01\x04\xa0\x02\x9b\x01\x03\x90\x00"))
	f.Add(uint8(2), []byte{0x04, 0x63, 0xC3, 0x6A, 0x88, 0x69, 0x83})
	atrs := [][]byte{cps.ATRCPS3Contact, cps.CPS4Facts.ATRs[0], cps.ATRCPS3CL}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		if len(data) > 4096 {
			return
		}
		c := &scriptCard{atr: atrs[int(which)%len(atrs)], data: data}
		tr := memTransport(t, c)
		r, err := probe.Run(context.Background(), tr, probe.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Safety.Refused != 0 {
			t.Fatalf("the probe tried %d refused commands: %+v", r.Safety.Refused, r.Trace)
		}
	})
}

func memTransport(t testing.TB, c interface {
	Transmit([]byte) ([]byte, error)
	ATR() []byte
	Reset()
}) card.Transport {
	tr := memreader.New("R")
	if err := tr.Insert("R", c); err != nil {
		t.Fatal(err)
	}
	return tr
}
