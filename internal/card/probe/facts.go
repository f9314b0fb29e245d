package probe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// evaluate turns the observations into facts, the suggested quirks and a
// second run of the agent's read flows with them.
func (p *prober) evaluate() {
	p.suggested = p.q
	p.factATR()
	if p.ct.Supported {
		if p.chipDoc {
			p.factsCPS4()
		} else {
			p.factsIAS()
		}
		p.factsNotTestable()
	}
	if p.ct.Supported && p.suggested != p.q {
		if err := p.suggested.Validate(); err != nil {
			// A suggestion the agent would not load: keep the quirks in use.
			p.r.Facts = append(p.r.Facts, Fact{ID: "suggestion", Doc: "docs/field-test.md", Question: "Is the suggested quirks file valid?",
				Assumed: "yes", Observed: err.Error(), Verdict: Inconclusive})
			p.suggested = p.q
		} else {
			p.agentReadsWith("suggested", p.suggested)
		}
	}
	if p.ct.Supported {
		p.factAgentReads()
	}
	p.quirksReport()
}

func (p *prober) add(f Fact) { p.r.Facts = append(p.r.Facts, f) }

// suggest records key's new value in f and in the suggested quirks.
func (p *prober) suggest(f *Fact, set func(q *cps.Quirks), keys ...string) {
	set(&p.suggested)
	if f.Suggested == nil {
		f.Suggested = map[string]json.RawMessage{}
	}
	for _, k := range keys {
		f.Suggested[k] = json.RawMessage(cps.QuirkValue(p.suggested, k))
	}
}

func val(q cps.Quirks, keys ...string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + cps.QuirkValue(q, k)
	}
	return strings.Join(parts, ", ")
}

func verdict(ok bool) string {
	if ok {
		return Confirms
	}
	return Contradicts
}

func (p *prober) factATR() {
	a := p.r.ATR
	f := Fact{ID: "atr", Doc: "card-cpx.md §1", Question: "Does the agent's ATR table recognise this card?",
		Assumed:  "CPS3 contact (mask), CPS3 contactless 3B 8F … (mask), CPS4 (3 exact ATRs)",
		Observed: fmt.Sprintf("%s: %s", a.Hex, a.Generation), Verdict: verdict(a.Supported)}
	if a.Matched != "" {
		f.Observed += " (" + a.Matched + ")"
	}
	if !a.Supported {
		f.Note = "The agent does not support this card; the probe sent it nothing. Send the report: its ATR may be a CPx the table lacks."
	}
	if p.ct.Contactless {
		f.Note = "Confirms the 3B 8F … form of the contactless ATR (OpenSC's 2B 8F … entry looks like a typo)."
	}
	p.add(f)
	if a.Decoded == nil {
		return
	}
	want := []int{0}
	if p.ct.Generation == cps.GenerationCPS4 {
		want = []int{0, 1}
	}
	t0 := false
	for _, e := range p.g.Log() {
		t0 = t0 || strings.HasPrefix(e.SW, "61 ")
	}
	pf := Fact{ID: "transport", Doc: "card-cpx.md §1, §5.2", Question: "Which protocols does the ATR offer; does the card answer 61 xx (T=0 GET RESPONSE)?",
		Assumed:  fmt.Sprintf("T=%v", want),
		Observed: fmt.Sprintf("T=%v; 61 xx seen: %v", a.Decoded.Protocols, t0),
		Verdict:  verdict(fmt.Sprint(a.Decoded.Protocols) == fmt.Sprint(want)),
		Note:     "The agent handles 61 xx and readers that fetch the response themselves alike."}
	if p.ct.Contactless {
		// A contactless ATR is built by the reader (PC/SC part 3): no assumption.
		pf.Assumed, pf.Verdict = "(open: the reader builds a contactless ATR)", Answered
	}
	p.add(pf)
}

func (p *prober) fileByName(name string) *FileReport {
	for i := range p.r.Files {
		if p.r.Files[i].Name == name {
			return &p.r.Files[i]
		}
	}
	return nil
}

func (p *prober) factsIAS() {
	// EF.ATR (card-cpx.md §5.3), contact only.
	if fr := p.fileByName("EF.ATR"); fr != nil && !p.ct.Contactless {
		f := Fact{ID: "ef-atr", Doc: "card-cpx.md §5.3", Question: "Does EF.ATR say short APDUs only, chaining, root AID 80 25 00 00 01 FF 01 00?",
			Assumed: "leading 80, no extended length, chaining, root AID 80 25 00 00 01 FF 01 00, buffers 260/260/256/256"}
		b, _ := hexBytes(fr.Content)
		if e, err := ParseEFATR(b); fr.Error != "" || err != nil {
			f.Observed, f.Verdict = firstNonEmpty(fr.Error, errString(err)), Inconclusive
		} else {
			f.Observed = fmt.Sprintf("prefix 80: %v, extended length: %v, chaining: %v, root AID %s, buffers %v",
				e.CategoryPrefix, e.ExtendedLength, e.Chaining, e.RootAID, e.Buffers)
			f.Verdict = verdict(e.CategoryPrefix && !e.ExtendedLength && e.Chaining && e.RootAID == apdu.Hex(cps.AIDIASECCRoot))
			f.Evidence = []string{"EF.ATR " + fr.Content}
		}
		p.add(f)
	}
	if fr := p.fileByName("EF.DIR"); fr != nil {
		f := Fact{ID: "ef-dir", Doc: "card-cpx.md §2.1", Question: "Does EF.DIR list the PKCS#15 applications \"CPX IAS\" and \"CPX IAS CL\"?",
			Assumed: apdu.Hex(cps.AIDPKCS15Contact) + " and " + apdu.Hex(cps.AIDPKCS15Contactless)}
		b, _ := hexBytes(fr.Content)
		if apps, err := ParseEFDIR(b); fr.Error != "" || err != nil {
			f.Observed, f.Verdict = firstNonEmpty(fr.Error, errString(err)), Inconclusive
		} else {
			var names []string
			has := map[string]bool{}
			for _, a := range apps {
				names = append(names, fmt.Sprintf("%s %q", a.AID, a.Label))
				has[a.AID] = true
			}
			f.Observed = strings.Join(names, "; ")
			f.Verdict = verdict(has[apdu.Hex(cps.AIDPKCS15Contact)] && has[apdu.Hex(cps.AIDPKCS15Contactless)])
		}
		p.add(f)
	}
	p.factSerial()
	p.factAppDF()
	p.factCertificates()
	if p.ct.Contactless {
		return
	}
	p.factPINObjects()
	p.factCHVRefs()
	p.factVerifyInMF()
	p.factCounters()
	p.factKeys()
}

func (p *prober) factSerial() {
	f := Fact{ID: "serial", Doc: "card-cpx.md §2.2", Question: "Does EF.SN.ICC hold a PAN with the ANS issuer number 80 25 00 00 01?",
		Assumed: "5A 0A 80 25 00 00 01 + 5 bytes"}
	fr := p.fileByName("EF.SN.ICC")
	switch {
	case fr == nil || fr.Error != "":
		f.Verdict = Contradicts
		if fr != nil {
			f.Observed = fr.Error
		}
	case p.r.Serial == "":
		f.Observed, f.Verdict = "EF.SN.ICC read, but not an ANS PAN", Contradicts
	default:
		f.Observed, f.Verdict = "serial "+p.r.Serial, Confirms
	}
	p.add(f)
}

func (p *prober) factAppDF() {
	f := Fact{ID: "app-df", Doc: "card-cpx.md §2.2", Question: "Is 3F00/0001 the DF of the PKCS#15 application (SELECT by AID, FCP tag 83)?",
		Quirks: []string{"appDfPath"}, Assumed: val(p.q, "appDfPath")}
	want := p.q.AppDFPath
	if p.ct.Contactless {
		f.Quirks, want = nil, cps.CPS3CLFacts.AppDFPath
		f.Assumed = "CPS3CLFacts.AppDFPath=" + want
	}
	switch {
	case p.appDFObserved == nil:
		f.Observed, f.Verdict = "SELECT by AID gave no FID", Inconclusive
		if p.appDFSelected {
			f.Observed += "; the DF at " + want + " exists"
		}
	case strings.EqualFold(hexPath(p.appDFObserved), want):
		f.Observed, f.Verdict = "DF "+hexPath(p.appDFObserved), Confirms
	default:
		f.Observed, f.Verdict = "DF "+hexPath(p.appDFObserved), Contradicts
		if !p.ct.Contactless {
			obs := hexPath(p.appDFObserved)
			p.suggest(&f, func(q *cps.Quirks) { q.AppDFPath = obs }, "appDfPath")
		}
	}
	p.add(f)
}

func (p *prober) factCertificates() {
	f := Fact{ID: "certificate-paths", Doc: "card-cpx.md §2.2, §8 item 2", Question: "Where are the authentication and signature certificates (ODF → CDF)?",
		Quirks: []string{"authCertPath", "signCertPath"}, Assumed: val(p.q, "authCertPath", "signCertPath")}
	authWant, signWant := p.q.AuthCertPath, p.q.SignCertPath
	if p.ct.Contactless {
		f.Quirks = nil
		authWant, signWant = cps.CPS3CLFacts.AuthCertPath, cps.CPS3CLFacts.SignCertPath
		f.Assumed = "CPS3CLFacts: " + authWant + ", " + signWant
	}
	var auth, sign []string
	cas := 0
	for _, c := range p.certs {
		switch c.role {
		case "authentication":
			auth = append(auth, c.path)
		case "signature":
			sign = append(sign, c.path)
		case "ca":
			cas++
		}
	}
	switch {
	case !p.cdfRead:
		f.Observed, f.Verdict = "no CDF could be read", Inconclusive
	case len(auth) != 1 || len(sign) != 1:
		f.Observed, f.Verdict = fmt.Sprintf("authentication %v, signature %v", auth, sign), Inconclusive
	default:
		f.Observed = fmt.Sprintf("authentication %s, signature %s", auth[0], sign[0])
		ok := strings.EqualFold(auth[0], authWant) && strings.EqualFold(sign[0], signWant)
		f.Verdict = verdict(ok)
		if !ok && !p.ct.Contactless {
			a, s := auth[0], sign[0]
			p.suggest(&f, func(q *cps.Quirks) { q.AuthCertPath, q.SignCertPath = a, s }, "authCertPath", "signCertPath")
		}
	}
	for _, c := range p.r.PKCS15.Certificates {
		f.Evidence = append(f.Evidence, fmt.Sprintf("%s %q %s %d bytes, %v", c.Path, c.Label, c.Role, c.Size, c.KeyUsage))
	}
	p.add(f)

	p.add(Fact{ID: "ca-certificates", Doc: "card-cpx.md §8 item 2", Question: "Does the card also hold CA certificates?",
		Assumed: "(open question)", Observed: fmt.Sprintf("%d CA certificates in the CDFs", cas), Verdict: answeredIf(p.cdfRead)})
	pub := Fact{ID: "certificates-public", Doc: "card-cpx.md §2.2", Question: "Are the certificates readable without the PIN?",
		Assumed: "yes (PKCS#15 public objects)", Observed: fmt.Sprintf("%d certificates read without a PIN", len(p.certs))}
	switch {
	case len(p.certs) >= 2:
		pub.Verdict = Confirms
	case p.cdfRead:
		pub.Verdict = Contradicts
	default:
		pub.Verdict = Inconclusive
	}
	p.add(pub)
}

func answeredIf(ok bool) string {
	if ok {
		return Answered
	}
	return Inconclusive
}

// pinObject returns the AODF's PIN (not the unblocking one) and PUK.
func (p *prober) pinObjects() (pin, puk *PINObject) {
	for i := range p.r.PKCS15.PINs {
		o := &p.r.PKCS15.PINs[i]
		if o.HasFlag("unblockingPin") {
			if puk == nil {
				puk = o
			}
		} else if pin == nil {
			pin = o
		}
	}
	return pin, puk
}

func (p *prober) factPINObjects() {
	pin, puk := p.pinObjects()
	sizes := p.sizes[p.q.VerifyP2PIN&0x1F]

	enc := Fact{ID: "pin-encoding", Doc: "card-cpx.md §3, §8 item 1", Question: "ASCII digits or BCD (AODF pinType)?",
		Quirks: []string{"pinEncoding"}, Assumed: val(p.q, "pinEncoding")}
	obs := ""
	switch {
	case pin == nil:
		enc.Observed, enc.Verdict = "no PIN object in the AODF", Inconclusive
	default:
		enc.Observed = "AODF pinType " + pin.Type
		switch pin.Type {
		case "ascii-numeric", "utf8":
			obs = "ascii"
		case "bcd":
			obs = "bcd"
		}
		switch {
		case obs == "":
			enc.Verdict = Inconclusive
		case obs == p.q.PINEncoding:
			enc.Verdict = Confirms
		default:
			enc.Verdict = Contradicts
			p.suggest(&enc, func(q *cps.Quirks) { q.PINEncoding = obs }, "pinEncoding")
		}
	}
	enc.Note = "Inferred from public data (AODF, CHV public data): the first PIN operation with the suggested quirks settles it."
	p.add(enc)

	pad := Fact{ID: "pin-padding", Doc: "card-cpx.md §3, §8 item 1", Question: "Is the PIN padded, to what length, with what byte (AODF, CHV public data 7F41)?",
		Quirks: []string{"pinPadLength", "pinPadByte"}, Assumed: val(p.q, "pinPadLength", "pinPadByte")}
	encoding := p.suggested.PINEncoding
	natural := cps.PINLength
	if encoding == "bcd" {
		natural = (cps.PINLength + 1) / 2
	}
	padLen, padByte, known := 0, p.q.PINPadByte, false
	var ev []string
	if pin != nil {
		ev = append(ev, fmt.Sprintf("AODF: minLength %d, storedLength %d, maxLength %d, padChar %q, flags %v",
			pin.MinLength, pin.StoredLength, pin.MaxLength, pin.PadChar, pin.Flags))
		known = true
		if pin.HasFlag("needs-padding") || pin.PadChar != "" {
			padLen = pin.StoredLength
			if padLen == 0 {
				padLen = pin.MaxLength
			}
			padByte = 0xFF
			if b, err := hexBytes(pin.PadChar); err == nil && len(b) == 1 {
				padByte = b[0]
			}
		}
	}
	if sizes != nil {
		ev = append(ev, fmt.Sprintf("7F41: max %d, min %d", sizes.Max, sizes.Min))
		if !known {
			known = true
			if sizes.Min == sizes.Max && sizes.Max > natural {
				// OpenSC's IAS-ECC rule: min == max → pad with FF to max.
				padLen, padByte = sizes.Max, 0xFF
			}
		}
	}
	if padLen <= natural {
		padLen = 0
	}
	pad.Evidence = ev
	switch {
	case !known:
		pad.Observed, pad.Verdict = "neither the AODF nor 7F41 could be read", Inconclusive
	case padLen == 0:
		pad.Observed = "no padding"
		pad.Verdict = verdict(p.q.PINPadLength == 0)
		if p.q.PINPadLength != 0 {
			p.suggest(&pad, func(q *cps.Quirks) { q.PINPadLength = 0 }, "pinPadLength")
		}
	default:
		pad.Observed = fmt.Sprintf("padded to %d bytes with %02X", padLen, padByte)
		ok := p.q.PINPadLength == padLen && p.q.PINPadByte == padByte
		pad.Verdict = verdict(ok)
		if !ok {
			l, b := padLen, padByte
			p.suggest(&pad, func(q *cps.Quirks) { q.PINPadLength, q.PINPadByte = l, b }, "pinPadLength", "pinPadByte")
		}
	}
	p.add(pad)

	lf := Fact{ID: "pin-length", Doc: "card-cpx.md §3", Question: "PIN 4 digits, PUK 8 digits?", Assumed: "PIN 4, PUK 8"}
	switch {
	case pin == nil || puk == nil:
		lf.Observed, lf.Verdict = "AODF PIN/PUK objects not found", Inconclusive
	default:
		lf.Observed = fmt.Sprintf("PIN %d..%d, PUK %d..%d digits (AODF min/max)", pin.MinLength, maxLen(pin), puk.MinLength, maxLen(puk))
		lf.Verdict = verdict(pin.MinLength <= cps.PINLength && cps.PINLength <= maxLen(pin) &&
			puk.MinLength <= cps.PUKLength && cps.PUKLength <= maxLen(puk))
	}
	p.add(lf)
}

func maxLen(o *PINObject) int {
	if o.MaxLength > 0 {
		return o.MaxLength
	}
	return o.StoredLength
}

// refFact settles a VERIFY P2 from the status queries in the MF.
func (p *prober) refFact(f *Fact, p2 byte, set func(q *cps.Quirks, v byte), key string) {
	alt := p2 ^ 0x80
	s1, ok1 := p.statusMF[p2]
	s2, ok2 := p.statusMF[alt]
	f.Evidence = append(f.Evidence, fmt.Sprintf("VERIFY without data P2 %02X: %s", p2, swString(s1, ok1)),
		fmt.Sprintf("VERIFY without data P2 %02X: %s", alt, swString(s2, ok2)))
	switch {
	case ok1 && knownRef(s1):
		f.Observed, f.Verdict = fmt.Sprintf("P2 %02X answers %s", p2, statusMeaning(s1)), Confirms
	case ok2 && knownRef(s2):
		f.Observed, f.Verdict = fmt.Sprintf("P2 %02X answers %s; P2 %02X does not", alt, statusMeaning(s2), p2), Contradicts
		p.suggest(f, func(q *cps.Quirks) { set(q, alt) }, key)
	default:
		f.Observed, f.Verdict = "neither reference answers VERIFY without data", Inconclusive
	}
}

func swString(sw uint16, ok bool) string {
	if !ok {
		return "not sent"
	}
	return fmt.Sprintf("%02X %02X (%s)", byte(sw>>8), byte(sw), statusMeaning(sw))
}

func (p *prober) factCHVRefs() {
	pin, puk := p.pinObjects()
	f := Fact{ID: "verify-p2-pin", Doc: "card-cpx.md §3, §8 item 1", Question: "VERIFY P2 of the PIN: 01 (global) or 81 (specific)?",
		Quirks: []string{"verifyP2Pin"}, Assumed: val(p.q, "verifyP2Pin")}
	p.refFact(&f, p.q.VerifyP2PIN, func(q *cps.Quirks, v byte) { q.VerifyP2PIN = v }, "verifyP2Pin")
	if pin != nil {
		f.Evidence = append(f.Evidence, fmt.Sprintf("AODF PIN pinReference %02X", pin.Reference))
	}
	if se := p.ses[1]; se != nil {
		f.Evidence = append(f.Evidence, fmt.Sprintf("SE #1 CRTs %v", se.CRTs))
	}
	p.add(f)

	u := Fact{ID: "puk-reference", Doc: "card-cpx.md §3, §8 item 5", Question: "Which CHV unblocks the PIN (SE #3), at which VERIFY P2?",
		Quirks: []string{"verifyP2Puk"}, Assumed: val(p.q, "verifyP2Puk")}
	p.refFact(&u, p.q.VerifyP2PUK, func(q *cps.Quirks, v byte) { q.VerifyP2PUK = v }, "verifyP2Puk")
	if se := p.ses[3]; se != nil {
		for _, c := range se.CRTs {
			if c.Tag == "A4" && c.CHV != "" {
				u.Evidence = append(u.Evidence, fmt.Sprintf("SE #3 AT names CHV %s (usage %s)", c.CHV, c.Usage))
				if b, err := hexBytes(c.CHV); err == nil && len(b) == 1 && u.Verdict == Inconclusive {
					v := b[0]
					u.Observed, u.Verdict = fmt.Sprintf("SE #3 names CHV %02X", v), verdict(v == p.q.VerifyP2PUK)
					if v != p.q.VerifyP2PUK {
						p.suggest(&u, func(q *cps.Quirks) { q.VerifyP2PUK = v }, "verifyP2Puk")
					}
				}
			}
		}
	}
	if puk != nil {
		u.Evidence = append(u.Evidence, fmt.Sprintf("AODF PUK pinReference %02X", puk.Reference))
	}
	p.add(u)
}

func (p *prober) factVerifyInMF() {
	f := Fact{ID: "verify-in-mf", Doc: "card-cpx.md §3", Question: "Does VERIFY need the MF current, or does it work with the application DF current?",
		Quirks: []string{"verifyInMf"}, Assumed: val(p.q, "verifyInMf")}
	p2 := p.suggested.VerifyP2PIN
	inMF, okMF := p.statusMF[p2]
	inApp, okApp := p.statusApp[p2]
	f.Evidence = []string{fmt.Sprintf("P2 %02X in the MF: %s", p2, swString(inMF, okMF)),
		fmt.Sprintf("P2 %02X in the application DF: %s", p2, swString(inApp, okApp))}
	switch {
	case !okMF || !okApp || !knownRef(inMF):
		f.Observed, f.Verdict = "not both answers", Inconclusive
	case knownRef(inApp):
		f.Observed = "VERIFY works with the application DF current"
		f.Verdict = Confirms // either setting works; false saves a SELECT
		if p.q.VerifyInMF {
			f.Note = "verifyInMf true also works; false saves one SELECT per PIN operation."
		}
	default:
		f.Observed = fmt.Sprintf("VERIFY needs the MF current (application DF: %s)", statusMeaning(inApp))
		f.Verdict = verdict(p.q.VerifyInMF)
		if !p.q.VerifyInMF {
			p.suggest(&f, func(q *cps.Quirks) { q.VerifyInMF = true }, "verifyInMf")
		}
	}
	p.add(f)
}

func (p *prober) factCounters() {
	f := Fact{ID: "tries-without-consuming", Doc: "card-cpx.md §3", Question: "Do VERIFY without data and GET DATA of the DOCP read the counters without consuming a try?",
		Assumed: "yes: counters unchanged"}
	var ev []string
	same, n := true, 0
	for _, ref := range []byte{p.q.VerifyP2PIN & 0x1F, p.q.VerifyP2PUK & 0x1F} {
		b, a := p.docp[ref], p.docpAfter[ref]
		if b == nil || a == nil {
			continue
		}
		n++
		ev = append(ev, fmt.Sprintf("CHV %02X: tries %d/%d before, %d/%d after; uses %d before, %d after", ref,
			b.TriesLeft, b.MaxTries, a.TriesLeft, a.MaxTries, b.UsesLeft, a.UsesLeft))
		same = same && b.TriesLeft == a.TriesLeft && b.UsesLeft == a.UsesLeft
	}
	f.Evidence = ev
	switch {
	case n == 0:
		f.Observed, f.Verdict = "the DOCP could not be read twice", Inconclusive
	case same:
		f.Observed, f.Verdict = "counters unchanged", Confirms
	default:
		f.Observed, f.Verdict = "A COUNTER CHANGED: stop using the probe on this card and send the report", Contradicts
	}
	p.add(f)

	c := Fact{ID: "chv-counters", Doc: "card-cpx.md §3", Question: "PIN 3 tries, PUK 10 tries and 100 uses?", Assumed: "PIN 3, PUK 10/100"}
	pin, puk := p.docp[p.q.VerifyP2PIN&0x1F], p.docp[p.q.VerifyP2PUK&0x1F]
	if pin == nil || puk == nil {
		c.Observed, c.Verdict = "DOCP not read", Inconclusive
	} else {
		c.Observed = fmt.Sprintf("PIN max %d (left %d), PUK max %d (left %d), PUK uses left %d", pin.MaxTries, pin.TriesLeft, puk.MaxTries, puk.TriesLeft, puk.UsesLeft)
		c.Verdict = verdict(pin.MaxTries == cps.PINMaxTries && puk.MaxTries == cps.PUKMaxTries)
		if pin.TriesLeft == 0 {
			c.Note = "The PIN is blocked on this card."
		}
	}
	p.add(c)
}

func (p *prober) factKeys() {
	f := Fact{ID: "key-references", Doc: "card-cpx.md §2.4", Question: "CPS_PRIV_SIG = key 81 (nonRepudiation), CPS_PRIV_AUT = key 82, RSA-2048?",
		Assumed: "81 CPS_PRIV_SIG, 82 CPS_PRIV_AUT, 2048 bits"}
	refs := map[int]KeyObject{}
	for _, k := range p.r.PKCS15.PrivateKeys {
		refs[k.KeyRef] = k
		f.Evidence = append(f.Evidence, fmt.Sprintf("%q ref %02X usage %v %d bits", k.Label, k.KeyRef, k.Usage, k.Bits))
	}
	for _, k := range p.r.KeySDOs {
		f.Evidence = append(f.Evidence, fmt.Sprintf("key SDO %s DOCP: %s, size %d", k.SDORef, k.SW, k.Size))
	}
	sig, okS := refs[int(cps.KeySignature)]
	aut, okA := refs[int(cps.KeyAuthentication)]
	switch {
	case !p.prkdfRead:
		f.Observed, f.Verdict = "no PrKDF read", Inconclusive
	default:
		f.Observed = fmt.Sprintf("81: %q, 82: %q", sig.Label, aut.Label)
		f.Verdict = verdict(okS && okA && sig.Label == "CPS_PRIV_SIG" && aut.Label == "CPS_PRIV_AUT")
		if f.Verdict == Contradicts {
			f.Note = "Key references are constants of the agent (card-cpx.md [C]): send the report to the maintainers."
		}
	}
	p.add(f)
}

// factsNotTestable lists the [?] facts a read-only probe cannot settle,
// with the quirk that holds each one; the flip tests (internal/card/probe)
// show that changing that quirk alone adapts the agent.
func (p *prober) factsNotTestable() {
	blocked := ""
	for _, c := range p.r.CHVs {
		for _, s := range c.Status {
			if s.SW == "69 83" {
				blocked = fmt.Sprintf("%s answers 69 83 to VERIFY without data (blocked). ", c.Name)
			}
		}
	}
	nt := []Fact{
		{ID: "third-wrong-pin", Doc: "card-cpx.md §3, §8 item 3", Question: "Does the VERIFY that exhausts the counter answer 63 C0 or 69 83?",
			Quirks: []string{"blockedOn63C0"}, Observed: blocked + "Needs three wrong PINs.",
			Note: "With blockedOn63C0 true (default) the agent reports \"blocked\" for both answers."},
		{ID: "change-reference-p1", Doc: "card-cpx.md §3, §8 item 5", Question: "CHANGE REFERENCE DATA: P1 00 (old‖new) or 01 (new only)?",
			Quirks: []string{"changeReferenceP1"}, Observed: "Needs a PIN change."},
		{ID: "reset-retry-counter", Doc: "card-cpx.md §3", Question: "RESET RETRY COUNTER with P1 02 (new PIN in the data)?",
			Quirks: []string{"resetRetryCounterP1"}, Observed: "Needs the PUK."},
		{ID: "select-clears-pin", Doc: "card-cpx.md §3", Question: "Does selecting the MF or the application DF clear the verified PIN?",
			Quirks: []string{"selectClearsPin"}, Observed: "Needs a verified PIN.",
			Note: "With verifyInMf false (default) the agent VERIFYs after its last SELECT, which works either way."},
		{ID: "empty-hash-tail", Doc: "card-cpx.md §4.2, §8 item 4", Question: "Does PSO HASH accept an empty tail (80 00); does PSO CDS accept a complete hash as data?",
			Quirks: []string{"emptyHashTail"}, Observed: "Needs a signature.",
			Note: "Only the empty message has an empty tail; \"fallback\" (default) tries both."},
		{ID: "fresh-verify-per-signature", Doc: "card-cpx.md §4.2", Question: "Does every PSO CDS need a fresh VERIFY (user consent)?",
			Observed: "Needs a signature.", Note: "The agent VERIFYs before every signature: it works either way."},
		{ID: "auth-without-pin", Doc: "card-cpx.md §4.1", Question: "INTERNAL AUTHENTICATE without the PIN answers 69 82?",
			Observed: "Needs a key operation.", Note: "The agent never uses a key without VERIFY."},
	}
	switch {
	case p.ct.Contactless:
		nt = nt[len(nt)-2:]
	case p.chipDoc:
		t := p.q.CPS4Table()
		nt = []Fact{
			{ID: "third-wrong-pin", Doc: "card-cpx.md §4.4, §8 item 3", Question: "Does the VERIFY that exhausts the counter answer 63 C0 or 69 83?",
				Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: blockedOn63C0 %v", t.BlockedOn63C0), Observed: blocked + "Needs three wrong PINs."},
			{ID: "change-reference-p1", Doc: "card-cpx.md §4.4", Question: "CHANGE REFERENCE DATA with P1 01 and the new PIN only?",
				Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: changeP1 %02X", t.ChangeP1), Observed: "Needs a PIN change."},
			{ID: "unblock", Doc: "card-cpx.md §4.4", Question: "RESET RETRY COUNTER P1 03 then CHANGE?",
				Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: unblockP1 %02X, unblockRefBit %02X", t.UnblockP1, t.UnblockRefBit), Observed: "Needs the PUK."},
			{ID: "cps4-sign-mse", Doc: "card-cpx.md §4.4, §8 item 6", Question: "MSE for a signature (91 02 alg key|80) and PSO CDS of the hash?",
				Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: signMseP1 %02X, signAlgSha256 %02X", t.SignMSEP1, t.SignAlgSHA256), Observed: "Needs a signature."},
			{ID: "cps4-auth-decipher", Doc: "card-cpx.md §4.4", Question: "Authentication by PSO DECIPHER of a host-padded block with key 20?",
				Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: authKeyRef %02X", t.AuthKeyRef), Observed: "Needs a key operation."},
		}
	}
	for _, f := range nt {
		f.Verdict = NotTestable
		switch {
		case f.Assumed != "": // the CPS4 table's value, set above
		case len(f.Quirks) > 0:
			f.Assumed = val(p.q, f.Quirks...)
		default:
			f.Assumed = "(the agent does not depend on it)"
		}
		p.add(f)
	}
}

// suggestCPS4 changes rows of the suggested quirks' CPS4 table.
func (p *prober) suggestCPS4(f *Fact, set func(t *cps.CPS4Table)) {
	p.suggest(f, func(q *cps.Quirks) {
		t := q.CPS4Table()
		t.AppletAID = append([]byte(nil), t.AppletAID...)
		set(&t)
		q.CPS4 = &t
	}, "cps4")
}

func (p *prober) factsCPS4() {
	f := p.q.CPS4Table()
	p.factSerial()
	a := Fact{ID: "cps4-applet", Doc: "card-cpx.md §4.4, §8 item 6", Question: "Is the ChipDoc applet selectable on logical channel 1?",
		Assumed: fmt.Sprintf("CLA %02X, SELECT %s", f.CLA, apdu.Hex(f.AppletAID)), Verdict: verdict(p.appletOK)}
	if fr := p.fileByName("SELECT applet " + apdu.Hex(f.AppletAID)); fr != nil {
		a.Observed = "SELECT answered " + fr.SW + " " + fr.Error
	}
	p.add(a)
	if !p.appletOK {
		return
	}
	cf := Fact{ID: "certificate-paths", Doc: "card-cpx.md §2.2, §4.4", Question: "Where are the certificates (ODF → CDF)?",
		Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: authCertPath %s, signCertPath %s", f.AuthCertPath, f.SignCertPath)}
	var auth, sign []string
	for _, c := range p.certs {
		switch c.role {
		case "authentication":
			auth = append(auth, c.path)
		case "signature":
			sign = append(sign, c.path)
		}
	}
	switch {
	case len(auth) == 1 && len(sign) == 1:
		cf.Observed = fmt.Sprintf("authentication %s, signature %s", auth[0], sign[0])
		ok := strings.EqualFold(auth[0], "3F00"+f.AuthCertPath) && strings.EqualFold(sign[0], "3F00"+f.SignCertPath)
		cf.Verdict = verdict(ok)
		if !ok && strings.HasPrefix(auth[0], "3F00") && strings.HasPrefix(sign[0], "3F00") {
			a, s := auth[0][4:], sign[0][4:]
			p.suggestCPS4(&cf, func(t *cps.CPS4Table) { t.AuthCertPath, t.SignCertPath = a, s })
		}
	default:
		cf.Observed, cf.Verdict = fmt.Sprintf("authentication %v, signature %v", auth, sign), Inconclusive
	}
	p.add(cf)

	k := Fact{ID: "cps4-key-references", Doc: "card-cpx.md §4.4, §8 item 6", Question: "Which key references do the PrKDF give the signature and authentication keys?",
		Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: signKeyRef %02X, authKeyRef %02X", f.SignKeyRef, f.AuthKeyRef)}
	sigRef, autRef := -1, -1
	for _, o := range p.r.PKCS15.PrivateKeys {
		k.Evidence = append(k.Evidence, fmt.Sprintf("%q ref %02X usage %v", o.Label, o.KeyRef, o.Usage))
		nonRep := false
		for _, u := range o.Usage {
			nonRep = nonRep || u == "nonRepudiation"
		}
		if nonRep {
			sigRef = o.KeyRef
		} else {
			autRef = o.KeyRef
		}
	}
	switch {
	case !p.prkdfRead || sigRef < 0 || autRef < 0 || sigRef > 0xFF || autRef > 0xFF:
		k.Observed, k.Verdict = "no PrKDF with both keys", Inconclusive
	default:
		k.Observed = fmt.Sprintf("signature %02X, authentication %02X", sigRef, autRef)
		ok := sigRef == int(f.SignKeyRef) && autRef == int(f.AuthKeyRef)
		k.Verdict = verdict(ok)
		if !ok {
			sr, ar := byte(sigRef), byte(autRef)
			p.suggestCPS4(&k, func(t *cps.CPS4Table) { t.SignKeyRef, t.AuthKeyRef = sr, ar })
		}
	}
	p.add(k)

	r := Fact{ID: "cps4-chv-references", Doc: "card-cpx.md §4.4", Question: "VERIFY without data on the applet: PIN and PUK references?",
		Quirks: []string{"cps4"}, Assumed: fmt.Sprintf("cps4: pinRef %02X, pukRef %02X", f.PINRef, f.PUKRef)}
	pick := func(ref byte) (byte, bool) {
		for _, p2 := range []byte{ref, ref ^ 0x80} {
			if sw, ok := p.statusMF[p2]; ok && knownRef(sw) {
				return p2, true
			}
		}
		return ref, false
	}
	pin, okPIN := pick(f.PINRef)
	puk, okPUK := pick(f.PUKRef)
	r.Observed = fmt.Sprintf("PIN at P2 %02X: %v; PUK at P2 %02X: %v", pin, okPIN, puk, okPUK)
	switch {
	case !okPIN || !okPUK:
		r.Verdict = Inconclusive
	case pin == f.PINRef && puk == f.PUKRef:
		r.Verdict = Confirms
	default:
		r.Verdict = Contradicts
		p.suggestCPS4(&r, func(t *cps.CPS4Table) { t.PINRef, t.PUKRef = pin, puk })
	}
	p.add(r)
}

func (p *prober) factAgentReads() {
	f := Fact{ID: "agent-read-path", Doc: "docs/field-test.md", Question: "Do the agent's own read flows (serial, certificates, PIN/PUK status) work with the quirks in use?",
		Assumed: "yes"}
	ok := p.agentReadsOK("in use")
	f.Verdict = verdict(ok)
	f.Observed = "all succeed"
	if !ok {
		var errs []string
		for _, a := range p.r.AgentReads {
			if a.Quirks == "in use" && !a.OK {
				errs = append(errs, a.Operation+": "+a.Error)
			}
		}
		f.Observed = strings.Join(errs, "; ")
		if p.agentReadsOK("suggested") {
			f.Note = "They all succeed with the suggested quirks."
		}
	}
	p.add(f)
}

func (p *prober) quirksReport() {
	in, _ := cps.EncodeQuirks(p.q, "")
	sug, err := cps.EncodeQuirks(p.suggested, "")
	if err != nil {
		sug = in
	}
	qr := QuirksReport{Source: p.srcName(), InUse: compact(in), Suggested: compact(sug), Changed: cps.DiffQuirks(p.q, p.suggested)}
	if qr.Changed == nil {
		qr.Changed = []string{}
	}
	shipped, _ := cps.ShippedQuirks()
	pol := map[string]json.RawMessage{}
	for _, k := range cps.DiffQuirks(shipped, p.suggested) {
		pol[k] = json.RawMessage(cps.QuirkValue(p.suggested, k))
	}
	b, _ := json.MarshalIndent(pol, "", "  ")
	qr.PolicyFile = b
	p.r.Quirks = qr
}

func (p *prober) srcName() string { return p.src }

func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil
	}
	return buf.Bytes()
}

// hexBytes decodes the report's spaced hex (masked content fails).
func hexBytes(s string) ([]byte, error) {
	return hex.DecodeString(strings.ReplaceAll(s, " ", ""))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
