package virtual

import (
	"bytes"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// file is a node of the card's file system: the MF, a DF or a transparent EF.
type file struct {
	fid      uint16
	name     []byte // DF name (AID), DFs only
	df       bool
	parent   *file
	children []*file
	data     []byte // EF content
	sfi      byte   // short EF identifier, 0 = none
	acl      []byte // contact access rules (8C value): AMB then SCBs
	aclCL    []byte // contactless access rules (9C value)
}

// Access rules seen on a real CPS3 (card-cpx.md §2.3, OSC#2223): AMB 7B =
// DELETE, TERMINATE, ACTIVATE, DEACTIVATE, UPDATE, READ for an EF.
var (
	aclPublicEF   = []byte{0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00} // read always, the rest never
	aclAdminEF    = []byte{0x7B, 0x45, 0xFF, 0xFF, 0xFF, 0x45, 0x00} // update/delete under SM (SE #5)
	aclDF         = []byte{0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0x45, 0x45} // create/delete children under SM
	aclContactles = []byte{0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00}
)

func (f *file) add(children ...*file) {
	for _, c := range children {
		c.parent = f
		f.children = append(f.children, c)
	}
}

func (f *file) child(fid uint16) *file {
	for _, c := range f.children {
		if c.fid == fid {
			return c
		}
	}
	return nil
}

func (f *file) childBySFI(sfi byte) *file {
	for _, c := range f.children {
		if !c.df && c.sfi == sfi {
			return c
		}
	}
	return nil
}

// fcp encodes the file control parameters returned by SELECT with P2=04, in
// the order a real CPS3 uses: 80 size, 82 descriptor, 83 FID, 84 DF name,
// 88 SFI, A1 access rules (8C contact, 9C contactless), 8A life cycle.
func (f *file) fcp() []byte {
	var body []byte
	if !f.df {
		body = append(body, apdu.EncodeTLV(0x80, []byte{byte(len(f.data) >> 8), byte(len(f.data))})...)
		body = append(body, apdu.EncodeTLV(0x82, []byte{0x01})...) // working EF, transparent
	} else {
		body = append(body, apdu.EncodeTLV(0x82, []byte{0x38})...) // DF
	}
	body = append(body, apdu.EncodeTLV(0x83, []byte{byte(f.fid >> 8), byte(f.fid)})...)
	if len(f.name) > 0 {
		body = append(body, apdu.EncodeTLV(0x84, f.name)...)
	}
	if f.sfi != 0 {
		body = append(body, apdu.EncodeTLV(0x88, []byte{f.sfi << 3})...)
	}
	body = append(body, apdu.EncodeTLV(0xA1, cat(apdu.EncodeTLV(0x8C, f.acl), apdu.EncodeTLV(0x9C, f.aclCL)))...)
	body = append(body, apdu.EncodeTLV(0x8A, []byte{0x05})...) // operational, activated
	return apdu.EncodeTLV(0x62, body)
}

// readable reports whether READ BINARY is always allowed: the last SCB of
// an EF rule with AMB bit 01 set.
func (f *file) readable() bool {
	if f.df || len(f.acl) == 0 || f.acl[0]&0x01 == 0 {
		return false
	}
	return f.acl[len(f.acl)-1] == 0x00
}

// buildFS builds the file tree of a card.
func buildFS(cfg Config, p15 pkcs15Files) (mf, app *file) {
	b := cfg.Behaviour
	ef := func(fid uint16, sfi byte, acl []byte, data []byte) *file {
		return &file{fid: fid, sfi: sfi, acl: acl, aclCL: aclContactles, data: data}
	}
	mf = &file{fid: cps.FIDMF, df: true, name: cps.AIDIASECCRoot, acl: aclDF, aclCL: aclDF}
	app = &file{fid: b.AppDFFID, df: true, name: cps.AIDPKCS15Contact, acl: aclDF, aclCL: aclDF}
	mf.add(
		ef(cps.FIDEFATR, 0x1D, aclAdminEF, efATR),
		ef(cps.FIDEFDIR, 0x1E, aclAdminEF, buildEFDIR()),
		ef(cps.FIDEFSNICC, 0x1C, aclPublicEF, buildEFSN(cfg.Serial)),
		app,
	)
	app.add(
		ef(cps.FIDODF, 0, aclPublicEF, p15.odf),
		ef(cps.FIDTokenInf, 0, aclPublicEF, p15.tokenInfo),
		ef(fidAODF, 0, aclPublicEF, p15.aodf),
		ef(fidPrKDF, 0, aclPublicEF, p15.prkdf),
		ef(fidCDF, 0, aclPublicEF, p15.cdf),
		ef(b.AuthCertFID, 0, aclPublicEF, bytes.Clone(cfg.AuthCert)),
		ef(b.SignCertFID, 0, aclPublicEF, bytes.Clone(cfg.SignCert)),
		// 7001 is readable only over contact on a real card; the Cryptolib
		// reads it to tell contact from contactless. Its content is not
		// documented: 16 zero bytes stand in for it.
		&file{fid: fidContact, acl: aclPublicEF, aclCL: []byte{0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, data: make([]byte, 16)},
	)
	return mf, app
}
