// Package probe is the field probe behind `cpsagent probe`: on whatever
// card is in a reader it sends only read-only, non-consuming commands and
// reports, for every fact that card-cpx.md marks [?] (§8), what this card
// answered, whether it confirms or contradicts the quirks in use, and the
// quirks file that would make the card work (docs/field-test.md).
//
// Safety is structural: every command goes through a Guard, an
// apdu.Transmitter that refuses anything outside SELECT, READ BINARY/RECORD,
// GET DATA, GET RESPONSE, VERIFY without data and MANAGE CHANNEL (open)
// before it reaches the card, and refuses VERIFY with data, CHANGE / RESET
// RETRY COUNTER, PSO, INTERNAL AUTHENTICATE, MSE and every write by name
// (DeniedINS). The probe never holds a PIN: it has no way to receive one.
package probe

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/iasecc"
)

// Options configures a probe run.
type Options struct {
	// Reader names the reader; "" means the only reader holding a card.
	Reader string
	// Unmasked keeps serial numbers, national ids and names in the report.
	Unmasked bool
	// Quirks are the quirks to compare the card with (the agent's: the
	// policy file or the shipped defaults); the zero value means
	// cps.DefaultQuirks().
	Quirks cps.Quirks
	// QuirksSource names where Quirks come from (a path, "built-in").
	QuirksSource string
	// Tool names the program in the report ("cpsagent probe <version>").
	Tool string
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
}

// readChunk is the READ BINARY Le (card-cpx.md §5.2).
const readChunk = 0xE7

// Run probes the card in a reader through t and returns the report. The
// error is non-nil only when no card could be reached; card answers,
// however odd, go into the report.
func Run(ctx context.Context, t card.Transport, o Options) (*Report, error) {
	if o.Quirks == (cps.Quirks{}) {
		o.Quirks = cps.DefaultQuirks()
		if o.QuirksSource == "" {
			o.QuirksSource = "built-in"
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	reader, err := pickReader(ctx, t, o.Reader)
	if err != nil {
		return nil, err
	}
	sess, err := t.Begin(ctx, reader)
	if err != nil {
		return nil, err
	}
	// Nothing was verified: no reset needed to clear a PIN state.
	defer func() { _ = sess.End(false) }()
	g := NewGuard(sess)
	p := &prober{
		ch:       &apdu.Channel{T: g},
		g:        g,
		q:        o.Quirks,
		unmasked: o.Unmasked,
		src:      o.QuirksSource,
		atr:      sess.ATR(),
		r: &Report{
			Format: ReportFormat, Tool: o.Tool, Time: o.Now().UTC(), Reader: reader, Masked: !o.Unmasked,
			Safety: Safety{Statement: Statement, Allowed: AllowedList()},
			Files:  []FileReport{}, CHVs: []CHVReport{}, SEs: []SEReport{}, KeySDOs: []KeySDOReport{},
			AgentReads: []AgentRead{}, Facts: []Fact{},
			PKCS15: PKCS15Report{ODF: []ODFEntry{}, PINs: []PINObject{}, PrivateKeys: []KeyObject{}, Certificates: []CertReport{}},
		},
		statusMF:  map[byte]uint16{},
		statusApp: map[byte]uint16{},
		docp:      map[byte]*iasecc.CHVDOCP{},
		docpAfter: map[byte]*iasecc.CHVDOCP{},
		sizes:     map[byte]*CHVSizes{},
		ses:       map[int]*SE{},
	}
	p.run(ctx)
	p.r.Trace = g.Log()
	p.r.Safety.Sent, p.r.Safety.Refused = g.Counts()
	return p.r, nil
}

// pickReader resolves "" to the only reader holding a card.
func pickReader(ctx context.Context, t card.Transport, want string) (string, error) {
	rs, err := t.Readers(ctx)
	if err != nil {
		return "", err
	}
	var names, with []string
	for _, r := range rs {
		names = append(names, r.Name)
		if r.Name == want {
			if !r.CardPresent {
				return "", fmt.Errorf("%w: %q", card.ErrNoCard, want)
			}
			return want, nil
		}
		if r.CardPresent {
			with = append(with, r.Name)
		}
	}
	switch {
	case want != "":
		return "", fmt.Errorf("%w: %q (readers: %s)", card.ErrNoReader, want, strings.Join(names, ", "))
	case len(rs) == 0:
		return "", card.ErrNoReader
	case len(with) == 0:
		return "", card.ErrNoCard
	case len(with) > 1:
		sort.Strings(with)
		return "", fmt.Errorf("%w: %q (use --reader)", card.ErrSeveralCards, with)
	}
	return with[0], nil
}

// prober holds one run's channel and observations.
type prober struct {
	ch       *apdu.Channel
	g        *Guard
	q        cps.Quirks
	unmasked bool
	src      string
	atr      []byte
	ct       cps.CardType
	r        *Report

	// access to files: IAS-ECC (CLA 00, SELECT by path with 3F00) or the
	// CPS4 applet (its CLA, path without 3F00).
	chipDoc  bool
	cla      byte
	appletOK bool

	appDF         []byte // the application DF used (observed, else quirks)
	appDFObserved []byte // from SELECT by AID (FCP tag 83)
	appDFSelected bool   // SELECT by path of appDF worked
	odfRead       bool
	cdfRead       bool
	aodfRead      bool
	prkdfRead     bool
	certs         []certObs

	statusMF  map[byte]uint16 // VERIFY without data with the MF current, by P2
	statusApp map[byte]uint16 // same with the application DF current
	docp      map[byte]*iasecc.CHVDOCP
	docpAfter map[byte]*iasecc.CHVDOCP
	sizes     map[byte]*CHVSizes
	ses       map[int]*SE

	suggested cps.Quirks
}

type certObs struct {
	role string // authentication, signature, ca, unknown
	path string // hex from 3F00
}

func (p *prober) run(ctx context.Context) {
	p.atrStep()
	switch {
	case !p.ct.Supported:
		// Not a CPx: like the agent, send it nothing.
	case p.ct.Generation == cps.GenerationCPS4:
		p.chipDoc, p.cla = true, p.q.CPS4Table().CLA
		p.cps4Steps(ctx)
	default:
		p.iasSteps(ctx)
	}
	p.evaluate()
}

func (p *prober) atrStep() {
	a := &p.r.ATR
	a.Hex = apdu.Hex(p.atr)
	if info, err := DecodeATR(p.atr); err != nil {
		a.Error = err.Error()
	} else {
		a.Decoded = info
	}
	p.ct = cps.Recognise(p.atr)
	a.Generation, a.Supported = p.ct.Generation, p.ct.Supported
	switch {
	case p.ct.Generation == cps.GenerationCPS4:
		for i, ref := range p.q.CPS4Table().ATRs {
			if string(ref) == string(p.atr) {
				a.Matched = []string{"CPS4 (exact)", "CPS4 release candidate (exact)", "CPS4 release candidate T=0 (exact)"}[min(i, 2)]
			}
		}
	case cps.MatchATR(p.atr, cps.ATRCPS3Contact, cps.ATRCPS3ContactMask):
		a.Matched = "CPS3 contact (mask)"
	case cps.MatchATR(p.atr, cps.ATRCPS3CL, cps.ATRCPS3CLMask):
		a.Matched = "CPS3 contactless (mask)"
	}
	if p.ct.Supported {
		p.r.Profile = p.ct.Generation
	}
}

// swOf returns the status word in err ("" when none).
func swOf(err error) string {
	if err == nil {
		return "90 00"
	}
	if sw, ok := apdu.SW(err); ok {
		return fmt.Sprintf("%02X %02X", byte(sw>>8), byte(sw))
	}
	return ""
}

func swValue(err error) uint16 {
	if err == nil {
		return apdu.SWSuccess
	}
	sw, _ := apdu.SW(err)
	return sw
}

func fidBytes(fids ...uint16) []byte {
	b := make([]byte, 0, 2*len(fids))
	for _, f := range fids {
		b = append(b, byte(f>>8), byte(f))
	}
	return b
}

func hexPath(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// selectFile selects path (absolute, from 3F00). IAS-ECC: P1 09, P2 04 for
// the FCP. CPS4 applet: the table's path P1, no FCP, path without 3F00.
func (p *prober) selectFile(path []byte) (*iasecc.FCP, error) {
	if !p.chipDoc {
		return iasecc.SelectPath(p.ch, path, true)
	}
	if err := p.openApplet(); err != nil {
		return nil, err
	}
	rel := path
	if len(rel) >= 2 && rel[0] == 0x3F && rel[1] == 0x00 {
		rel = rel[2:]
	}
	f := p.q.CPS4Table()
	p1 := f.PathSelectP1
	if len(rel) == 2 {
		p1 = 0x00
	}
	_, err := p.ch.Send(apdu.Command{CLA: p.cla, INS: apdu.InsSelect, P1: p1, P2: 0x0C, Data: rel, Le: apdu.NoLe})
	if err != nil {
		return nil, fmt.Errorf("select %X: %w", rel, err)
	}
	return nil, nil
}

// openApplet selects the CPS4 applet on its logical channel (CPS4 table).
func (p *prober) openApplet() error {
	if p.appletOK {
		return nil
	}
	f := p.q.CPS4Table()
	sel := apdu.Command{CLA: p.cla, INS: apdu.InsSelect, P1: 0x04, P2: f.AppletSelectP2, Data: f.AppletAID, Le: apdu.NoLe}
	r, err := p.ch.Do(sel)
	if err != nil {
		return err
	}
	if r.SW == f.ChannelNotSupportedSW && f.ManageChannelOpen && p.cla&0x03 != 0 {
		if _, err := p.ch.Send(apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x00, P2: p.cla & 0x03, Le: apdu.NoLe}); err != nil {
			return fmt.Errorf("manage channel: %w", err)
		}
		if r, err = p.ch.Do(sel); err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("select the CPS4 applet: %w", err)
	}
	p.appletOK = true
	return nil
}

// readCurrent reads the current EF: size bytes, or until the end (-1).
func (p *prober) readCurrent(size int) ([]byte, error) {
	if !p.chipDoc {
		return iasecc.ReadAll(p.ch, size, readChunk)
	}
	var out []byte
	for size < 0 || len(out) < size {
		le := readChunk
		if size >= 0 && size-len(out) < le {
			le = size - len(out)
		}
		if len(out) > 0x7FFF {
			return nil, fmt.Errorf("%w: file larger than 32767 bytes", ErrFormat)
		}
		r, err := p.ch.Do(apdu.Command{CLA: p.cla, INS: apdu.InsReadBinary, P1: byte(len(out) >> 8), P2: byte(len(out)), Le: le})
		if err != nil {
			return nil, err
		}
		switch r.SW {
		case apdu.SWSuccess:
			out = append(out, r.Data...)
			if len(r.Data) < le {
				return out, nil
			}
		case apdu.SWEndOfFile:
			return append(out, r.Data...), nil
		case apdu.SWWrongP1P2:
			return out, nil
		default:
			return nil, r.Err()
		}
	}
	return out, nil
}

// file selects and reads one file into the report. masker, when set,
// formats the content (nil: plain hex). read false: FCP only.
func (p *prober) file(name string, path []byte, read bool, masker func([]byte) string) ([]byte, bool) {
	fr := FileReport{Name: name, Path: hexPath(path), Size: -1}
	defer func() { p.r.Files = append(p.r.Files, fr) }()
	fcp, err := p.selectFile(path)
	fr.SW = swOf(err)
	if err != nil {
		fr.Error = err.Error()
		return nil, false
	}
	size := -1
	if fcp != nil {
		fr.FCP = fcpInfo(fcp)
		size = fcp.Size
	}
	if !read {
		return nil, true
	}
	b, err := p.readCurrent(size)
	if err != nil {
		fr.Error = err.Error()
		return nil, false
	}
	fr.Size = len(b)
	switch {
	case masker == nil:
		fr.Content = apdu.Hex(b)
	case p.unmasked:
		fr.Content = apdu.Hex(b)
	default:
		fr.Content = masker(b)
	}
	return b, true
}

func fcpInfo(f *iasecc.FCP) *FCPInfo {
	fi := &FCPInfo{Size: f.Size, Descriptor: fmt.Sprintf("%02X", f.Descriptor), SFI: int(f.SFI)}
	if f.HasFID {
		fi.FID = fmt.Sprintf("%04X", f.FID)
	}
	if len(f.DFName) > 0 {
		fi.DFName = apdu.Hex(f.DFName)
	}
	if f.LCS != 0 {
		fi.LCS = fmt.Sprintf("%02X", f.LCS)
	}
	fi.ContactACL = apdu.Hex(f.ContactACL)
	fi.ContactlessACL = apdu.Hex(f.ContactlessACL)
	return fi
}

// hidden is the masker of files the report never prints in masked mode.
func hidden(b []byte) string { return fmt.Sprintf("[%d bytes, shown with --unmasked]", len(b)) }

// maskSNICC keeps the tags and the ANS issuer prefix of EF.SN.ICC.
func maskSNICC(b []byte) string {
	n := 2 + len(cps.IssuerANS)
	if len(b) <= n {
		return apdu.Hex(b)
	}
	return apdu.Hex(b[:n]) + strings.Repeat(" **", len(b)-n)
}

// iasSteps probes a CPS3 (IAS-ECC), contact or contactless.
func (p *prober) iasSteps(ctx context.Context) {
	mf := fidBytes(cps.FIDMF)
	p.file("EF.ATR", fidBytes(cps.FIDMF, cps.FIDEFATR), true, nil)
	p.file("EF.DIR", fidBytes(cps.FIDMF, cps.FIDEFDIR), true, nil)
	if b, ok := p.file("EF.SN.ICC", fidBytes(cps.FIDMF, cps.FIDEFSNICC), true, maskSNICC); ok {
		if s, err := cps.ParseSNICC(b); err == nil {
			p.r.Serial = p.maskSerial(s)
		}
	}
	if !p.ct.Contactless {
		p.file("EF_ACTUA (FCP only)", fidBytes(cps.FIDMF, 0xD010), false, nil)
	}

	// The application DFs, by name, with their FCP.
	aid, other := cps.AIDPKCS15Contact, cps.AIDPKCS15Contactless
	if p.ct.Contactless {
		aid, other = other, aid
	}
	for i, a := range [][]byte{aid, other} {
		fr := FileReport{Name: "SELECT AID " + apdu.Hex(a), Path: "AID " + hexPath(a), Size: -1}
		fcp, err := iasecc.SelectAID(p.ch, a, true)
		fr.SW = swOf(err)
		if err != nil {
			fr.Error = err.Error()
		} else {
			fr.FCP = fcpInfo(fcp)
			if i == 0 && fcp.HasFID {
				p.appDFObserved = append(append([]byte(nil), mf...), byte(fcp.FID>>8), byte(fcp.FID))
			}
		}
		p.r.Files = append(p.r.Files, fr)
	}
	if p.appDFObserved != nil {
		p.r.AppDF = hexPath(p.appDFObserved)
	}
	p.appDF = p.appDFObserved
	if p.appDF == nil {
		appPath := p.q.AppDFPath
		if p.ct.Contactless {
			appPath = cps.CPS3CLFacts.AppDFPath
		}
		p.appDF, _ = hex.DecodeString(appPath)
	}
	if len(p.appDF) >= 4 {
		_, err := iasecc.SelectPath(p.ch, p.appDF, false)
		p.appDFSelected = err == nil
		p.pkcs15()
	}
	if ctx.Err() != nil || p.ct.Contactless {
		// No PIN over the contactless interface (card-cpx.md §1).
		p.agentReads()
		return
	}
	p.chvSteps()
	p.seSteps()
	p.agentReads()
}

// cps4Steps probes a CPS4 (ChipDoc applet, the quirks' CPS4 table).
func (p *prober) cps4Steps(ctx context.Context) {
	f := p.q.CPS4Table()
	fr := FileReport{Name: "SELECT applet " + apdu.Hex(f.AppletAID), Path: "AID " + hexPath(f.AppletAID), Size: -1}
	err := p.openApplet()
	fr.SW = swOf(err)
	if err != nil {
		fr.Error = err.Error()
	}
	p.r.Files = append(p.r.Files, fr)
	if err == nil {
		if b, ok := p.file("EF.SN.ICC", fidBytes(cps.FIDMF, f.SerialFID), true, maskSNICC); ok {
			if s, err := cps.ParseSNICC(b); err == nil {
				p.r.Serial = p.maskSerial(s)
			}
		}
		p.appDF, _ = hex.DecodeString("3F00" + f.AppDFPath)
		p.pkcs15()
		// Tries left without consuming one: VERIFY without data (§4.4).
		for _, c := range []struct {
			name string
			ref  byte
		}{{"PIN", f.PINRef}, {"PUK", f.PUKRef}} {
			cr := CHVReport{Name: c.name, SDORef: fmt.Sprintf("%02X", c.ref&0x1F), Status: []StatusQuery{}}
			for _, p2 := range []byte{c.ref, c.ref ^ 0x80} {
				cr.Status = append(cr.Status, p.statusQuery("applet", p2, p.statusMF))
			}
			p.r.CHVs = append(p.r.CHVs, cr)
		}
	}
	if ctx.Err() == nil {
		p.agentReads()
	}
}

func (p *prober) maskSerial(s string) string {
	if p.unmasked {
		return s
	}
	return maskSerial(s)
}

// resolve makes a PKCS#15 path absolute (relative paths are from the
// application DF).
func (p *prober) resolve(hexp string) ([]byte, error) {
	b, err := hex.DecodeString(hexp)
	if err != nil || len(b) < 2 || len(b)%2 != 0 || len(b) > 16 {
		return nil, fmt.Errorf("%w: PKCS#15 path %q", ErrFormat, hexp)
	}
	if b[0] == 0x3F && b[1] == 0x00 {
		return b, nil
	}
	if len(p.appDF) >= 4 && len(b) > len(p.appDF)-2 && string(b[:len(p.appDF)-2]) == string(p.appDF[2:]) {
		return append([]byte{0x3F, 0x00}, b...), nil
	}
	return append(append([]byte(nil), p.appDF...), b...), nil
}

// pkcs15 reads ODF, TokenInfo and the directories the ODF lists, then the
// certificates of the CDF.
func (p *prober) pkcs15() {
	odf, ok := p.file("EF.ODF", append(append([]byte(nil), p.appDF...), fidBytes(cps.FIDODF)...), true, nil)
	p.file("EF.TokenInfo", append(append([]byte(nil), p.appDF...), fidBytes(cps.FIDTokenInf)...), true, hidden)
	if !ok {
		return
	}
	entries, err := ParseODF(odf)
	if err != nil {
		p.r.Files[len(p.r.Files)-2].Error = err.Error()
		return
	}
	p.odfRead = true
	p.r.PKCS15.ODF = entries
	for _, e := range entries {
		path, err := p.resolve(e.Path)
		if err != nil {
			continue
		}
		switch e.Kind {
		case "privateKeys":
			if b, ok := p.file("PrKDF", path, true, nil); ok {
				if ks, err := ParsePrKDF(b); err == nil {
					p.r.PKCS15.PrivateKeys = append(p.r.PKCS15.PrivateKeys, ks...)
					p.prkdfRead = true
				}
			}
		case "authObjects":
			if b, ok := p.file("AODF", path, true, nil); ok {
				if ps, err := ParseAODF(b); err == nil {
					p.r.PKCS15.PINs = append(p.r.PKCS15.PINs, ps...)
					p.aodfRead = true
				}
			}
		case "certificates", "trustedCertificates", "usefulCertificates":
			b, ok := p.file("CDF ("+e.Kind+")", path, true, nil)
			if !ok {
				continue
			}
			cdf, err := cps.ParseCDF(b, p.appDF)
			if err != nil {
				continue
			}
			p.cdfRead = true
			for _, ce := range cdf {
				p.certificate(ce)
			}
		}
	}
}

// certificate reads one certificate of the CDF (public, no PIN).
func (p *prober) certificate(e cps.CDFEntry) {
	cr := CertReport{Label: e.Label, ID: fmt.Sprintf("%X", e.ID), Path: hexPath(e.Path.Path), Role: "unknown", KeyUsage: []string{}}
	defer func() { p.r.PKCS15.Certificates = append(p.r.PKCS15.Certificates, cr) }()
	if _, err := p.selectFile(e.Path.Path); err != nil {
		cr.Error = err.Error()
		return
	}
	b, err := p.readCurrent(-1)
	if err != nil {
		cr.Error = err.Error()
		return
	}
	if e.Path.Offset > 0 || e.Path.Length >= 0 {
		end := len(b)
		if e.Path.Length >= 0 && e.Path.Offset+e.Path.Length < end {
			end = e.Path.Offset + e.Path.Length
		}
		if e.Path.Offset > end {
			cr.Error = "PKCS#15 path offset beyond the file"
			return
		}
		b = b[e.Path.Offset:end]
	}
	if n, ok := derTotal(b); ok && n <= len(b) {
		b = b[:n]
	}
	cr.Size = len(b)
	c, err := x509.ParseCertificate(b)
	if err != nil {
		cr.Error = err.Error()
		return
	}
	cr.IsCA = c.IsCA
	cr.KeyUsage = keyUsageList(c.KeyUsage)
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
		cr.Bits = k.N.BitLen()
	}
	cr.Issuer = c.Issuer.CommonName
	cr.NotAfter = c.NotAfter.UTC()
	if p.unmasked {
		cr.Subject = c.Subject.String()
	}
	signOnly := c.KeyUsage&x509.KeyUsageContentCommitment != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0
	switch {
	case c.IsCA:
		cr.Role = "ca"
	case signOnly:
		cr.Role = "signature"
	default:
		cr.Role = "authentication"
	}
	p.certs = append(p.certs, certObs{role: cr.Role, path: cr.Path})
}

func keyUsageList(u x509.KeyUsage) []string {
	names := []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	out := []string{}
	for i, n := range names {
		if u&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// derTotal returns the length of the DER element at the start of b.
func derTotal(b []byte) (int, bool) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, false
	}
	l := int(b[1])
	if l < 0x80 {
		return 2 + l, true
	}
	n := l & 0x7F
	if n == 0 || n > 3 || len(b) < 2+n {
		return 0, false
	}
	l = 0
	for _, c := range b[2 : 2+n] {
		l = l<<8 | int(c)
	}
	return 2 + n + l, true
}

// statusQuery sends VERIFY without data (never with data: the guard
// refuses it) and records the answer in into.
func (p *prober) statusQuery(df string, p2 byte, into map[byte]uint16) StatusQuery {
	cmd := apdu.Command{CLA: p.cla, INS: apdu.InsVerify, P1: 0x00, P2: p2, Le: apdu.NoLe}
	b, _ := cmd.Bytes()
	sq := StatusQuery{DF: df, Command: apdu.Hex(b)}
	r, err := p.ch.Do(cmd)
	if err != nil {
		sq.Meaning = err.Error()
		return sq
	}
	into[p2] = r.SW
	sq.SW = fmt.Sprintf("%02X %02X", r.SW1(), r.SW2())
	sq.Meaning = statusMeaning(r.SW)
	return sq
}

func statusMeaning(sw uint16) string {
	switch {
	case sw == apdu.SWSuccess:
		return "verified since the last reset"
	case sw&0xFFF0 == apdu.SWVerificationFailedPrefix:
		return fmt.Sprintf("%d tries left", sw&0x0F)
	case sw == apdu.SWAuthBlocked:
		return "blocked"
	case sw == apdu.SWReferencedDataNotFound:
		return "no such reference here"
	}
	return (&apdu.StatusError{SW: sw}).Error()
}

// knownRef: the card knows the CHV at this P2 (tries, verified or blocked).
func knownRef(sw uint16) bool {
	return sw == apdu.SWSuccess || sw == apdu.SWAuthBlocked || sw&0xFFF0 == apdu.SWVerificationFailedPrefix
}

func docpInfo(d *iasecc.CHVDOCP) *DOCPInfo {
	if d == nil {
		return nil
	}
	return &DOCPInfo{MaxTries: d.MaxTries, TriesLeft: d.TriesLeft, UsesLeft: d.UsesLeft, ACL: apdu.Hex(d.ACL)}
}

// chvSteps reads the PIN and PUK public data with the MF current, asks the
// tries left without consuming one (VERIFY without data at both candidate
// references, in the MF and in the application DF), and reads the DOCP
// again to show the counters did not move.
func (p *prober) chvSteps() {
	pinP2, pukP2 := p.q.VerifyP2PIN, p.q.VerifyP2PUK
	chvs := []struct {
		name string
		sdo  byte
		p2s  []byte
	}{
		{"PIN", pinP2 & 0x1F, []byte{pinP2, pinP2 ^ 0x80}},
		{"PUK", pukP2 & 0x1F, []byte{pukP2, pukP2 ^ 0x80}},
	}
	if err := iasecc.SelectMF(p.ch); err != nil {
		return
	}
	reports := make([]CHVReport, len(chvs))
	for i, c := range chvs {
		cr := CHVReport{Name: c.name, SDORef: fmt.Sprintf("%02X", c.sdo), Status: []StatusQuery{}}
		if d, err := iasecc.GetCHVDOCP(p.ch, c.sdo); err != nil {
			cr.DOCPError = err.Error()
		} else {
			p.docp[c.sdo] = d
			cr.DOCP = docpInfo(d)
		}
		if s, err := p.chvSizes(c.sdo); err != nil {
			cr.SizesError = err.Error()
		} else {
			p.sizes[c.sdo] = s
			cr.Sizes = s
		}
		for _, p2 := range c.p2s {
			cr.Status = append(cr.Status, p.statusQuery("MF", p2, p.statusMF))
		}
		reports[i] = cr
	}
	// The same status query with the application DF current: does VERIFY
	// need the MF (Quirks.VerifyInMF)?
	if p.appDFSelected {
		if _, err := iasecc.SelectPath(p.ch, p.appDF, false); err == nil {
			reports[0].Status = append(reports[0].Status, p.statusQuery("application DF", p.workingP2(chvs[0].p2s), p.statusApp))
			p.keySDOs()
		}
		if err := iasecc.SelectMF(p.ch); err != nil {
			p.r.CHVs = append(p.r.CHVs, reports...)
			return
		}
	}
	for i, c := range chvs {
		if d, err := iasecc.GetCHVDOCP(p.ch, c.sdo); err == nil {
			p.docpAfter[c.sdo] = d
			reports[i].DOCPAfter = docpInfo(d)
		}
	}
	p.r.CHVs = append(p.r.CHVs, reports...)
}

// workingP2 is the first candidate the card knew in the MF (else the first).
func (p *prober) workingP2(p2s []byte) byte {
	for _, p2 := range p2s {
		if knownRef(p.statusMF[p2]) {
			return p2
		}
	}
	return p2s[0]
}

// chvSizes reads the CHV public data 7F41 (card-cpx.md §3):
// 00 CB 3F FF 0B 4D 09 70 07 BF 81 ref 03 7F 41 80.
func (p *prober) chvSizes(ref byte) (*CHVSizes, error) {
	data := []byte{0x4D, 0x09, 0x70, 0x07, 0xBF, 0x81, ref, 0x03, 0x7F, 0x41, 0x80}
	b, err := p.ch.Send(apdu.Command{CLA: 0x00, INS: apdu.InsGetData, P1: 0x3F, P2: 0xFF, Data: data, Le: apdu.NoLe})
	if err != nil {
		return nil, fmt.Errorf("get data 7F41 of CHV %02X: %w", ref, err)
	}
	return ParseCHVSizes(b)
}

// keySDOs reads the DOCP of the RSA private keys 1 and 2 (key references
// 81, 82), application DF current: 00 CB 3F FF 0A 4D 08 70 06 BF 90 0n 02 A0 80.
func (p *prober) keySDOs() {
	for _, ref := range []byte{cps.KeySignature & 0x1F, cps.KeyAuthentication & 0x1F} {
		data := []byte{0x4D, 0x08, 0x70, 0x06, 0xBF, 0x90, ref, 0x02, 0xA0, 0x80}
		kr := KeySDOReport{SDORef: fmt.Sprintf("%02X", ref)}
		b, err := p.ch.Send(apdu.Command{CLA: 0x00, INS: apdu.InsGetData, P1: 0x3F, P2: 0xFF, Data: data, Le: apdu.NoLe})
		kr.SW = swOf(err)
		if err == nil {
			if v, err := apdu.FindPath(b, 0x70, 0xBF9000|uint32(ref), 0xA0); err == nil {
				if ts, err := apdu.ParseTLV(v); err == nil {
					if s, ok := apdu.FindTLV(ts, 0x80); ok {
						kr.Size, _ = smallUint(s.Value)
					}
					if a, ok := apdu.FindTLV(ts, 0xA1); ok {
						kr.ACL = apdu.Hex(a.Value)
					}
				}
			}
		}
		p.r.KeySDOs = append(p.r.KeySDOs, kr)
	}
}

// seSteps reads the security environments 1 to 5 of the MF:
// 00 CB 3F FF 0A 4D 08 70 06 BF FB 0n 02 7B 80.
func (p *prober) seSteps() {
	if err := iasecc.SelectMF(p.ch); err != nil {
		return
	}
	for ref := 1; ref <= 5; ref++ {
		data := []byte{0x4D, 0x08, 0x70, 0x06, 0xBF, 0xFB, byte(ref), 0x02, 0x7B, 0x80}
		sr := SEReport{Ref: ref}
		b, err := p.ch.Send(apdu.Command{CLA: 0x00, INS: apdu.InsGetData, P1: 0x3F, P2: 0xFF, Data: data, Le: apdu.NoLe})
		sr.SW = swOf(err)
		if err == nil {
			if se, err := ParseSE(b); err != nil {
				sr.Error = err.Error()
			} else {
				sr.SE = se
				p.ses[ref] = se
			}
		}
		p.r.SEs = append(p.r.SEs, sr)
	}
}

// agentReads runs the agent's read-only profile flows through the guard,
// with the quirks in use; evaluate adds a run with the suggested quirks
// when they differ.
func (p *prober) agentReads() { p.agentReadsWith("in use", p.q) }

func (p *prober) agentReadsWith(label string, q cps.Quirks) {
	prof, err := cps.NewProfile(p.atr, q)
	if err != nil {
		p.r.AgentReads = append(p.r.AgentReads, AgentRead{Quirks: label, Operation: "profile", Error: err.Error()})
		return
	}
	run := func(op string, f func() (string, error)) {
		before := p.ch.Count()
		res, err := f()
		a := AgentRead{Quirks: label, Operation: op, OK: err == nil, APDUs: int(p.ch.Count() - before), Result: res}
		if err != nil {
			a.Error = err.Error()
		}
		p.r.AgentReads = append(p.r.AgentReads, a)
	}
	run("serial", func() (string, error) {
		s, err := prof.ReadSerial(p.ch)
		return p.maskSerial(s), err
	})
	run("certificates", func() (string, error) {
		auth, sign, err := prof.ReadCertificates(p.ch)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("authentication %d bytes, signature %d bytes", len(auth), len(sign)), nil
	})
	if p.ct.Contactless {
		return
	}
	status := func(st cps.CHVState) string {
		switch {
		case st.Blocked:
			return "blocked"
		case st.Verified:
			return "verified"
		}
		s := fmt.Sprintf("%d tries left", st.TriesLeft)
		if st.UsesLeft >= 0 {
			s += fmt.Sprintf(", %d uses left", st.UsesLeft)
		}
		return s
	}
	run("PIN status", func() (string, error) {
		st, err := prof.PINStatus(p.ch)
		return status(st), err
	})
	run("PUK status", func() (string, error) {
		st, err := prof.PUKStatus(p.ch)
		return status(st), err
	})
}

// agentReadsOK reports whether every agent read with label succeeded.
func (p *prober) agentReadsOK(label string) bool {
	n := 0
	for _, a := range p.r.AgentReads {
		if a.Quirks != label {
			continue
		}
		n++
		if !a.OK {
			return false
		}
	}
	return n > 0
}
