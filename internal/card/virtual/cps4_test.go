package virtual

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

func withModel(m string) func(*Config) { return func(c *Config) { c.Model = m } }

// sel1 selects the ChipDoc applet on channel 1.
const sel1 = "01 A4 04 0C 08 80 25 00 00 01 FF 01 00"

func TestCPS4ChannelsAndSelection(t *testing.T) {
	c := newTestCard(t, withModel(ModelCPS4))
	if !bytes.Equal(c.ATR(), cps.CPS4Facts.ATRs[0]) || cps.Recognise(c.ATR()).Generation != cps.GenerationCPS4 {
		t.Fatalf("ATR %s", apdu.Hex(c.ATR()))
	}
	wantSW(t, "READ on closed channel 1", rawHex(t, c, "01 B0 00 00 0C"), apdu.SWLogicalChannelNotSupp)
	wantSW(t, "GET RESPONSE on closed channel 2", rawHex(t, c, "02 C0 00 00 10"), apdu.SWLogicalChannelNotSupp)
	wantSW(t, "channel 0 without the applet", rawHex(t, c, "00 A4 00 0C 02 D0 03"), apdu.SWINSNotSupported)
	wantSW(t, "further interindustry class", rawHex(t, c, "41 A4 04 0C 08 80 25 00 00 01 FF 01 00"), apdu.SWLogicalChannelNotSupp)
	wantSW(t, "secure messaging", rawHex(t, c, "0D A4 04 0C 08 80 25 00 00 01 FF 01 00"), 0x6882)
	wantSW(t, "proprietary class", rawHex(t, c, "81 A4 04 0C 08 80 25 00 00 01 FF 01 00"), apdu.SWCLANotSupported)
	wantSW(t, "unknown AID on a closed channel opens it, not found", rawHex(t, c, "03 A4 04 0C 02 12 34"), apdu.SWFileNotFound)
	wantSW(t, "select applet (opens channel 1)", rawHex(t, c, sel1), apdu.SWSuccess)
	wantSW(t, "select EF.SN.ICC by FID", rawHex(t, c, "01 A4 00 0C 02 D0 03"), apdu.SWSuccess)
	d, sw := raw(t, c, h(t, "01 B0 00 00 0C"))
	wantSW(t, "read EF.SN.ICC", sw, apdu.SWSuccess)
	if s, err := cps.ParseSNICC(d); err != nil || s != c.Serial()[:8] {
		t.Fatalf("serial %q, %v", s, err)
	}
	// Channel 2 is separate: the applet is not selected there.
	wantSW(t, "read on channel 3 (no EF)", rawHex(t, c, "03 B0 00 00 0C"), apdu.SWINSNotSupported)
	wantSW(t, "INTERNAL AUTHENTICATE does not exist", rawHex(t, c, "01 88 00 00 02 01 02 00"), apdu.SWINSNotSupported)
	wantSW(t, "IAS-ECC MSE is not ChipDoc's", rawHex(t, c, "01 22 41 A4 06 84 01 82 80 01 02"), apdu.SWIncorrectP1P2)
	wantSW(t, "sign MSE with an unknown key", rawHex(t, c, "01 22 81 B6 04 91 02 28 81"), apdu.SWReferencedDataNotFound)
	wantSW(t, "sign MSE with PSS", rawHex(t, c, "01 22 81 B6 04 91 02 2C A1"), apdu.SWWrongData)
	wantSW(t, "auth MSE with another key", rawHex(t, c, "01 22 41 B8 03 83 01 21"), apdu.SWReferencedDataNotFound)
	wantSW(t, "PSO CDS without MSE", rawHex(t, c, "01 2A 9E 9A 20 "+strings.Repeat("00 ", 32)+"00"), apdu.SWConditionsNotSatisfied)
	wantSW(t, "sign MSE", rawHex(t, c, "01 22 81 B6 04 91 02 28 A1"), apdu.SWSuccess)
	wantSW(t, "PSO CDS without the PIN", rawHex(t, c, "01 2A 9E 9A 20 "+strings.Repeat("00 ", 32)+"00"), apdu.SWSecurityStatus)

	// A reset closes channel 1.
	c.Reset()
	wantSW(t, "after reset", rawHex(t, c, "01 A4 00 0C 02 D0 03"), apdu.SWLogicalChannelNotSupp)

	// MANAGE CHANNEL: the card picks channel 1, then it closes.
	d, sw = raw(t, c, h(t, "00 70 00 00 01"))
	if sw != apdu.SWSuccess || !bytes.Equal(d, []byte{1}) {
		t.Fatalf("open: % X %04X", d, sw)
	}
	wantSW(t, "select on the opened channel", rawHex(t, c, sel1), apdu.SWSuccess)
	wantSW(t, "close channel 1", rawHex(t, c, "00 70 80 01"), apdu.SWSuccess)
	wantSW(t, "closed again", rawHex(t, c, "01 B0 00 00 01"), apdu.SWLogicalChannelNotSupp)
	wantSW(t, "cannot close channel 0", rawHex(t, c, "00 70 80 00"), apdu.SWIncorrectP1P2)

	// Behaviour.ChannelNeedsManage: SELECT does not open a channel.
	m := newTestCard(t, withModel(ModelCPS4), func(c *Config) { c.Behaviour.ChannelNeedsManage = true })
	wantSW(t, "select on a closed channel", rawHex(t, m, sel1), apdu.SWLogicalChannelNotSupp)
	wantSW(t, "MANAGE CHANNEL open 1", rawHex(t, m, "00 70 00 01"), apdu.SWSuccess)
	wantSW(t, "then select", rawHex(t, m, sel1), apdu.SWSuccess)
}

// profileOn runs the agent's CPS4 profile over a virtual card.
func profileOn(c *Card) (*cps.CPS4, *apdu.Channel) {
	return cps.NewCPS4(cps.DefaultQuirks(), cps.CPS4Facts), &apdu.Channel{T: c}
}

func TestCPS4WithTheAgentProfile(t *testing.T) {
	for _, transport := range []string{"t1", "t0"} {
		t.Run(transport, func(t *testing.T) {
			c := newTestCard(t, withModel(ModelCPS4), func(c *Config) { c.Behaviour.Transport = transport })
			cfg := c.Config()
			p, ch := profileOn(c)
			serial, err := p.ReadSerial(ch)
			if err != nil || serial != c.Serial()[:8] {
				t.Fatalf("serial %q, %v", serial, err)
			}
			auth, sign, err := p.ReadCertificates(ch)
			if err != nil || !bytes.Equal(auth, cfg.AuthCert) || !bytes.Equal(sign, cfg.SignCert) {
				t.Fatalf("certificates: %v", err)
			}
			st, err := p.PINStatus(ch)
			if err != nil || st.TriesLeft != 3 || st.MaxTries != 3 {
				t.Fatalf("PIN status %+v, %v", st, err)
			}
			msg := []byte("ordonnance")
			sig, err := p.Sign(ch, []byte(DefaultPIN), msg)
			if err != nil {
				t.Fatal(err)
			}
			hm := sha256.Sum256(msg)
			if err := rsa.VerifyPKCS1v15(certPub(t, sign), crypto.SHA256, hm[:], sig); err != nil {
				t.Fatalf("signature: %v", err)
			}
			digestInfo := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, hm[:]...)
			p2, ch2 := profileOn(c)
			asig, err := p2.Authenticate(ch2, []byte(DefaultPIN), digestInfo)
			if err != nil {
				t.Fatal(err)
			}
			if err := rsa.VerifyPKCS1v15(certPub(t, auth), crypto.SHA256, hm[:], asig); err != nil {
				t.Fatalf("authentication: %v", err)
			}
			if s := c.Stats(); s.Signatures != 1 || s.Deciphers != 1 {
				t.Fatalf("stats %+v", s)
			}
			if transport == "t0" && c.Stats().GetResponses == 0 {
				t.Fatal("T=0 without GET RESPONSE")
			}
		})
	}
}

func TestCPS4PINManagement(t *testing.T) {
	c := newTestCard(t, withModel(ModelCPS4))
	p, ch := profileOn(c)
	var wrong *cps.WrongPINError
	if err := p.ChangePIN(ch, []byte("0000"), []byte("5678")); !errors.As(err, &wrong) || wrong.TriesLeft != 2 {
		t.Fatalf("wrong current PIN: %v", err)
	}
	if err := p.ChangePIN(ch, []byte(DefaultPIN), []byte("5678")); err != nil {
		t.Fatal(err)
	}
	c.Reset()
	wantSW(t, "CHANGE without VERIFY", rawHex(t, c, sel1), apdu.SWSuccess)
	wantSW(t, "CHANGE without VERIFY", rawHex(t, c, "01 24 01 01 04 31 31 31 31"), apdu.SWSecurityStatus)
	wantSW(t, "CHANGE old‖new is not ChipDoc's", rawHex(t, c, "01 24 00 01 08 35 36 37 38 31 31 31 31"), apdu.SWIncorrectP1P2)
	// Block the PIN.
	for i := 0; i < 3; i++ {
		rawHex(t, c, "01 20 00 01 04 30 30 30 30")
	}
	wantSW(t, "blocked status", rawHex(t, c, "01 20 00 01"), apdu.SWAuthBlocked)
	p, ch = profileOn(c)
	if st, err := p.PINStatus(ch); err != nil || !st.Blocked {
		t.Fatalf("%+v, %v", st, err)
	}
	wantSW(t, "RESET RETRY COUNTER without the PUK", rawHex(t, c, "01 2C 03 81"), apdu.SWSecurityStatus)
	if err := p.Unblock(ch, []byte("00000000"), []byte("2468")); !errors.As(err, &wrong) || !wrong.PUK || wrong.TriesLeft != 9 {
		t.Fatalf("wrong PUK: %v", err)
	}
	if err := p.Unblock(ch, []byte(DefaultPUK), []byte("2468")); err != nil {
		t.Fatal(err)
	}
	ps := c.PINStatus()
	if ps.PINTriesLeft != 3 || ps.PUKUsesLeft != cps.PUKMaxUses-1 || ps.PUKVerified || ps.PUKTriesLeft != 10 {
		t.Fatalf("after unblock %+v", ps)
	}
	c.Reset()
	p, ch = profileOn(c)
	if _, err := p.Sign(ch, []byte("2468"), []byte("x")); err != nil {
		t.Fatalf("new PIN: %v", err)
	}
	if s := c.Stats(); s.Unblocks != 1 || s.PINChanges != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCPS4TraceMasksPSOData(t *testing.T) {
	var tr strings.Builder
	c := newTestCard(t, withModel(ModelCPS4), func(c *Config) { c.Trace = &tr })
	p, ch := profileOn(c)
	if _, err := p.Authenticate(ch, []byte(DefaultPIN), []byte{0xCA, 0xFE, 0xCA, 0xFE}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sign(ch, []byte(DefaultPIN), []byte("secret document")); err != nil {
		t.Fatal(err)
	}
	out := tr.String()
	h := sha256.Sum256([]byte("secret document"))
	for _, leak := range []string{"CA FE CA FE", apdu.Hex(h[:4]), "31 32 33 34"} {
		if strings.Contains(out, leak) {
			t.Errorf("trace shows %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "> 11 2A 80 86 FF **") || !strings.Contains(out, "> 01 2A 9E 9A 20 **") {
		t.Errorf("PSO commands not traced:\n%s", out)
	}
}

func TestContactlessModel(t *testing.T) {
	c := newTestCard(t, withModel(ModelCPS3CL))
	if ct := cps.Recognise(c.ATR()); ct.Generation != cps.GenerationCPS3CL || !ct.Contactless {
		t.Fatalf("ATR %s: %+v", apdu.Hex(c.ATR()), ct)
	}
	p, err := cps.NewProfile(c.ATR(), cps.DefaultQuirks())
	if err != nil {
		t.Fatal(err)
	}
	ch := &apdu.Channel{T: c}
	serial, err := p.ReadSerial(ch)
	if err != nil || serial != c.Serial()[:8] {
		t.Fatalf("serial %q, %v", serial, err)
	}
	auth, sign, err := p.ReadCertificates(ch)
	if err != nil || !bytes.Equal(auth, c.Config().AuthCert) || !bytes.Equal(sign, c.Config().SignCert) {
		t.Fatalf("certificates: %v", err)
	}
	// The contactless application, by name.
	_, sw := do(t, c, apdu.Command{INS: apdu.InsSelect, P1: 0x04, P2: 0x0C, Data: cps.CPS3CLFacts.AppAID, Le: apdu.NoLe})
	wantSW(t, "select CL application", sw, apdu.SWSuccess)
	_, sw = do(t, c, apdu.Command{INS: apdu.InsSelect, P1: 0x04, P2: 0x0C, Data: cps.AIDPKCS15Contact, Le: apdu.NoLe})
	wantSW(t, "contact application", sw, apdu.SWFileNotFound)
	// Nothing that needs the PIN or a key.
	for _, cmd := range []string{"00 20 00 01", "00 20 00 01 04 31 32 33 34", "00 22 41 B6 06 84 01 81 80 01 42",
		"00 2A 9E 9A 00", "00 88 00 00 01 01 00", "00 24 00 01 08 31 32 33 34 35 36 37 38", "00 2C 02 01 04 31 32 33 34",
		"00 CB 3F FF 0A 4D 08 70 06 BF 81 02 02 A0 80"} {
		wantSW(t, cmd, rawHex(t, c, cmd), apdu.SWSecurityStatus)
	}
	if s := c.Stats(); s.Verifies != 0 || s.Signatures != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOtherModel(t *testing.T) {
	c := newTestCard(t, withModel(ModelOther))
	if ct := cps.Recognise(c.ATR()); ct.Supported || ct.Generation != cps.GenerationUnknown {
		t.Fatalf("ATR %s recognised as %+v", apdu.Hex(c.ATR()), ct)
	}
	var x byte
	for _, b := range c.ATR()[1:] {
		x ^= b
	}
	if x != 0 {
		t.Fatal("ATROther: bad TCK")
	}
	wantSW(t, "select", rawHex(t, c, "00 A4 04 0C 08 80 25 00 00 01 FF 01 00"), apdu.SWFileNotFound)
	wantSW(t, "verify", rawHex(t, c, "00 20 00 01"), apdu.SWINSNotSupported)
	wantSW(t, "malformed", rawHex(t, c, "00 A4 04 0C 08 80"), apdu.SWWrongLength)
	if _, err := NewCard(func() Config { cfg := testConfig(t); cfg.Model = "cps5"; return cfg }()); !errors.Is(err, ErrConfig) {
		t.Fatalf("unknown model: %v", err)
	}
}

// FuzzCPS4Transmit feeds random APDU sequences (split on FF FF) to a CPS4
// card: never a panic, always a status word, and the card still works
// after a reset.
func FuzzCPS4Transmit(f *testing.F) {
	for _, s := range []string{
		sel1 + " FF FF 01 A4 00 0C 02 D0 03 FF FF 01 B0 00 00 0C",
		sel1 + " FF FF 01 20 00 01 04 31 32 33 34 FF FF 01 22 81 B6 04 91 02 28 A1 FF FF 01 2A 9E 9A 20 " + strings.Repeat("AA ", 32) + "00",
		sel1 + " FF FF 01 22 41 B8 03 83 01 20 FF FF 11 2A 80 86 02 00 01 FF FF 01 2A 80 86 01 FF 00",
		"00 70 00 00 01 FF FF 00 70 80 01 FF FF 02 A4 04 0C 07 A0 00 00 01 51 00 00",
		sel1 + " FF FF 01 20 00 02 08 31 32 33 34 35 36 37 38 FF FF 01 2C 03 81 FF FF 01 24 01 01 04 31 31 31 31",
		"01 C0 00 00 00", "", "01",
	} {
		f.Add(hexBytes(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := fuzzConfig(t)
		cfg.Model = ModelCPS4
		c, err := NewCard(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range bytes.Split(in, []byte{0xFF, 0xFF}) {
			resp, err := c.Transmit(cmd)
			if err != nil {
				t.Fatalf("Transmit: %v", err)
			}
			if len(resp) < 2 {
				t.Fatalf("response %x without status word", resp)
			}
		}
		c.Reset()
		p, ch := profileOn(c)
		if s, err := p.ReadSerial(ch); err != nil || s != cfg.Serial[:8] {
			t.Fatalf("card broken after fuzz input: %q, %v", s, err)
		}
		if st := c.PINStatus(); st.PINTriesLeft < 0 || st.PINTriesLeft > 3 || st.PUKUsesLeft < 0 || st.PUKUsesLeft > 100 {
			t.Fatalf("counters out of range: %+v", st)
		}
	})
}
