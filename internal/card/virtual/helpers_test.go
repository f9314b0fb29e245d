package virtual

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// testConfig returns the "medecin" identity (generated once per process).
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg, err := Identity("medecin")
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	return cfg
}

func newTestCard(t testing.TB, mod ...func(*Config)) *Card {
	t.Helper()
	cfg := testConfig(t)
	for _, m := range mod {
		m(&cfg)
	}
	c, err := NewCard(cfg)
	if err != nil {
		t.Fatalf("NewCard: %v", err)
	}
	return c
}

// h decodes spaced hex.
func h(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// raw sends one APDU and splits the answer.
func raw(t testing.TB, c *Card, cmd []byte) ([]byte, uint16) {
	t.Helper()
	resp, err := c.Transmit(cmd)
	if err != nil {
		t.Fatalf("Transmit(%s): %v", apdu.Hex(cmd), err)
	}
	r, err := apdu.ParseResponse(resp)
	if err != nil {
		t.Fatalf("response %s: %v", apdu.Hex(resp), err)
	}
	return r.Data, r.SW
}

// rawHex sends a hex APDU and returns the status word.
func rawHex(t testing.TB, c *Card, s string) uint16 {
	t.Helper()
	_, sw := raw(t, c, h(t, s))
	return sw
}

// do runs a command through the lead's transmit loop (61xx, 6Cxx).
func do(t testing.TB, c *Card, cmd apdu.Command) ([]byte, uint16) {
	t.Helper()
	ch := &apdu.Channel{T: c}
	r, err := ch.Do(cmd)
	if err != nil {
		t.Fatalf("Do(%02X %02X): %v", cmd.CLA, cmd.INS, err)
	}
	return r.Data, r.SW
}

// doHex runs a hex APDU through the transmit loop.
func doHex(t testing.TB, c *Card, s string) ([]byte, uint16) {
	t.Helper()
	cmd, err := apdu.ParseCommand(h(t, s))
	if err != nil {
		t.Fatalf("ParseCommand(%s): %v", s, err)
	}
	return do(t, c, cmd)
}

func wantSW(t testing.TB, what string, got, want uint16) {
	t.Helper()
	if got != want {
		t.Errorf("%s: SW %04X, want %04X", what, got, want)
	}
}

func verifyPIN(t testing.TB, c *Card, pin string) uint16 {
	t.Helper()
	_, sw := do(t, c, apdu.Command{INS: apdu.InsVerify, P2: 0x01, Data: []byte(pin), Le: apdu.NoLe})
	return sw
}

func selectApp(t testing.TB, c *Card) {
	t.Helper()
	_, sw := do(t, c, apdu.Command{INS: apdu.InsSelect, P1: 0x04, P2: 0x0C, Data: cps.AIDPKCS15Contact, Le: apdu.NoLe})
	wantSW(t, "select app", sw, apdu.SWSuccess)
}

// readFile selects a path from the MF and reads the whole EF in 0xE7 chunks.
func readFile(t testing.TB, c *Card, path ...uint16) []byte {
	t.Helper()
	var p []byte
	for _, f := range path {
		p = append(p, byte(f>>8), byte(f))
	}
	fcp, sw := do(t, c, apdu.Command{INS: apdu.InsSelect, P1: 0x09, P2: 0x04, Data: append([]byte{0x3F, 0x00}, p...), Le: apdu.MaxShortLe})
	wantSW(t, "select", sw, apdu.SWSuccess)
	size, err := apdu.FindPath(fcp, 0x62, 0x80)
	if err != nil || len(size) != 2 {
		t.Fatalf("FCP without size: %s", apdu.Hex(fcp))
	}
	n := int(size[0])<<8 | int(size[1])
	var out []byte
	for len(out) < n {
		le := min(n-len(out), cps.ReadChunk)
		d, sw := do(t, c, apdu.Command{INS: apdu.InsReadBinary, P1: byte(len(out) >> 8), P2: byte(len(out)), Le: le})
		wantSW(t, "read", sw, apdu.SWSuccess)
		if len(d) == 0 {
			t.Fatal("empty read")
		}
		out = append(out, d...)
	}
	return out
}

func certPub(t testing.TB, der []byte) *rsa.PublicKey {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		t.Fatal("certificate key is not RSA")
	}
	return pub
}

// hashCommand builds the PSO HASH data for msg (Cryptolib split).
func hashCommand(alg hashAlg, msg []byte) []byte {
	state, count, tail := midState(alg, msg)
	var d []byte
	if state == nil {
		d = []byte{0x90, 0x00}
	} else {
		d = append([]byte{0x90, byte(len(state) + 8)}, state...)
		var cnt [8]byte
		for i := 0; i < 8; i++ {
			cnt[7-i] = byte(count >> (8 * i))
		}
		d = append(d, cnt[:]...)
	}
	d = append(d, 0x80, byte(len(tail)))
	return append(d, tail...)
}
