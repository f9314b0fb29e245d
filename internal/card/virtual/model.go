package virtual

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// Card models (Config.Model). The CPS3 contact card is the package's
// original card; the others share its file system, PIN/PUK counters,
// trace, latency model and state file, and differ where the agent's card
// facts say a real card differs.
const (
	// ModelCPS3 is a CPS3 through its contact interface (IAS-ECC, T=0).
	ModelCPS3 = "cps3"
	// ModelCPS4 is a CPS4: the NXP ChipDoc applet on logical channel 1,
	// its MSE, PSO CDS of a hash, authentication by PSO DECIPHER, and its
	// ATR — every value from cps.CPS4Facts (cps4.go).
	ModelCPS4 = "cps4"
	// ModelCPS3CL is a CPS3 through its contactless interface: its ATR, the
	// "CPX IAS CL" application (cps.CPS3CLFacts) with the certificates, and
	// no PIN, signature or authentication (69 82).
	ModelCPS3CL = "cps3-cl"
	// ModelOther is an unrelated ISO 7816 card (not a CPx): a generic ATR,
	// 6A 82 to every SELECT and 6D 00 to everything else. The agent must
	// recognise it from the ATR and send it nothing.
	ModelOther = "other"
)

// Models lists the model names (cpsagent vcard --model).
func Models() []string { return []string{ModelCPS3, ModelCPS4, ModelCPS3CL, ModelOther} }

// ATROther is ModelOther's ATR: T=0 and T=1 offered, historical bytes
// 00 "GENERIC", valid TCK. It matches no CPx ATR or mask.
var ATROther = []byte{0x3B, 0x88, 0x80, 0x01, 0x00, 'G', 'E', 'N', 'E', 'R', 'I', 'C', 0x58}

func modelTitle(m string) string {
	switch m {
	case ModelCPS4:
		return "CPS4"
	case ModelCPS3CL:
		return "CPS3 (contactless)"
	case ModelOther:
		return "non-CPx card"
	}
	return "CPS3"
}

// lastFID returns the last FID of a hex path ("0001A001" → A001).
func lastFID(path string) uint16 {
	if len(path) < 4 {
		return 0
	}
	v, err := strconv.ParseUint(path[len(path)-4:], 16, 16)
	if err != nil {
		return 0
	}
	return uint16(v)
}

// withModel checks Config.Model and sets the behaviours a model implies
// before the defaults apply: the CPS4 answers without GET RESPONSE (its
// ATR offers T=1) unless Behaviour.Transport says otherwise, and takes its
// CHV references and certificate FIDs from cps.CPS4Facts.
func (cfg Config) withModel() (Config, error) {
	switch cfg.Model {
	case "":
		cfg.Model = ModelCPS3
	case ModelCPS3, ModelCPS3CL, ModelOther:
	case ModelCPS4:
		f, b := cps.CPS4Facts, &cfg.Behaviour
		if b.Transport == "" {
			b.Transport = "t1"
		}
		if b.PINRef == 0 {
			b.PINRef = f.PINRef
		}
		if b.PUKRef == 0 {
			b.PUKRef = f.PUKRef
		}
		if b.AuthCertFID == 0 {
			b.AuthCertFID = lastFID(f.AuthCertPath)
		}
		if b.SignCertFID == 0 {
			b.SignCertFID = lastFID(f.SignCertPath)
		}
		if b.AppDFFID == 0 {
			b.AppDFFID = lastFID(f.AppDFPath)
		}
	default:
		return cfg, fmt.Errorf("%w: model %q (want one of %v)", ErrConfig, cfg.Model, Models())
	}
	return cfg, nil
}

// initModel gives a new card its model's ATR and, for the contactless
// model, its file system.
func (c *Card) initModel(p15 pkcs15Files) {
	c.model = c.cfg.Model
	switch c.model {
	case ModelCPS4:
		f := cps.CPS4Facts
		c.atr = bytes.Clone(f.ATRs[0])
		c.pin.maxTries, c.puk.maxTries = f.PINMaxTries, f.PUKMaxTries
		c.pin.tries, c.puk.tries = min(c.pin.tries, f.PINMaxTries), min(c.puk.tries, f.PUKMaxTries)
		if sn := c.mf.child(cps.FIDEFSNICC); sn != nil {
			sn.fid = f.SerialFID
		}
		c.cps4 = &cps4State{}
		c.resetModel()
	case ModelCPS3CL:
		c.atr = bytes.Clone(cps.ATRCPS3CL)
		c.mf, c.app = buildCLFS(c.cfg, p15)
		c.curDF = c.mf
	case ModelOther:
		c.atr = bytes.Clone(ATROther)
	}
}

// resetModel clears the model's volatile state (reset, power off).
func (c *Card) resetModel() {
	if c.cps4 != nil {
		c.cps4.reset()
	}
}

// processModel handles the APDUs a model answers differently from the
// CPS3 contact card; done is false when the CPS3 processing applies.
func (c *Card) processModel(raw []byte) (resp []byte, done bool) {
	switch c.model {
	case ModelCPS4:
		return c.processCPS4(raw), true
	case ModelOther:
		c.maskResp = false
		cmd, err := apdu.ParseCommand(raw)
		switch {
		case err != nil:
			return swBytes(apdu.SWWrongLength), true
		case cmd.INS == apdu.InsSelect:
			return swBytes(apdu.SWFileNotFound), true
		}
		return swBytes(apdu.SWINSNotSupported), true
	case ModelCPS3CL:
		// Over contactless the CHV and key access rules (9C) never allow
		// PIN, key or SDO commands: refused before anything else is checked.
		if len(raw) >= 4 && (raw[0] == 0x00 || raw[0] == apdu.ClaChaining) && clRefused(raw[1]) {
			c.maskResp = false
			c.pending, c.secret, c.chain = nil, false, nil
			return swBytes(apdu.SWSecurityStatus), true
		}
	}
	return nil, false
}

func clRefused(ins byte) bool {
	switch ins {
	case apdu.InsVerify, apdu.InsChangeReferenceData, apdu.InsResetRetryCounter, apdu.InsManageSecurityEnv,
		apdu.InsPerformSecurityOp, apdu.InsInternalAuthenticate, apdu.InsGetData:
		return true
	}
	return false
}

// buildCLFS builds what the contactless interface shows: the MF with
// EF.DIR and EF.SN.ICC, and the "CPX IAS CL" application DF with an ODF, a
// TokenInfo, a CDF and the two certificates, at the paths of
// cps.CPS3CLFacts. The contact application DF (and its 7001) is absent.
func buildCLFS(cfg Config, p15 pkcs15Files) (mf, app *file) {
	f := cps.CPS3CLFacts
	dfFID := lastFID(f.AppDFPath)
	authFID, signFID := lastFID(f.AuthCertPath), lastFID(f.SignCertPath)
	ef := func(fid uint16, data []byte) *file {
		return &file{fid: fid, acl: aclPublicEF, aclCL: aclPublicEF, data: data}
	}
	appPath := func(fid uint16) []byte {
		return derPath(0x3F, 0x00, byte(dfFID>>8), byte(dfFID), byte(fid>>8), byte(fid))
	}
	cert := func(label string, id []byte, fid uint16) []byte {
		return derSeq(derSeq(derUTF8(label)), derSeq(derTLV(0x04, id)), derTLV(0xA1, derSeq(appPath(fid))))
	}
	odf := derTLV(0xA4, appPath(fidCDF))
	cdf := cat(
		cert("Certificat d'Authentification CPS", idAuth, authFID),
		cert("Certificat de Signature CPS", idSign, signFID),
	)
	mf = &file{fid: cps.FIDMF, df: true, name: cps.AIDIASECCRoot, acl: aclDF, aclCL: aclDF}
	app = &file{fid: dfFID, df: true, name: bytes.Clone(f.AppAID), acl: aclDF, aclCL: aclDF}
	sn := &file{fid: cps.FIDEFSNICC, sfi: 0x1C, acl: aclPublicEF, aclCL: aclPublicEF, data: buildEFSN(cfg.Serial)}
	dir := &file{fid: cps.FIDEFDIR, sfi: 0x1E, acl: aclAdminEF, aclCL: aclPublicEF, data: buildEFDIR()}
	mf.add(dir, sn, app)
	app.add(
		ef(cps.FIDODF, odf),
		ef(cps.FIDTokenInf, p15.tokenInfo),
		ef(fidCDF, cdf),
		ef(authFID, bytes.Clone(cfg.AuthCert)),
		ef(signFID, bytes.Clone(cfg.SignCert)),
	)
	return mf, app
}
