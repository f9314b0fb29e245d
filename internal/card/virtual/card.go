package virtual

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// Status words used here that the apdu package does not name.
const (
	swLcInconsistent  uint16 = 0x6A87
	swSMNotSupported  uint16 = 0x6882
	swChainingNotSupp uint16 = 0x6884
	swNoCurrentEF     uint16 = 0x6986
	swMoreDataPrefix  uint16 = 0x6100
	swWrongLePrefix   uint16 = 0x6C00
	maxChainedData           = 1024
)

// ErrPoweredOff is returned by Transmit while the card is powered off.
var ErrPoweredOff = errors.New("virtual: card is powered off")

var _ apdu.Transmitter = (*Card)(nil)

// key is one RSA private key SDO of DF 0001 (SDO reference n, MSE
// reference 80|n).
type key struct {
	priv *rsa.PrivateKey
	// operations allowed by the key's DOCP
	sign, intAuth, decipher bool
}

func (k *key) size() int { return (k.priv.N.BitLen() + 7) / 8 }

// crt is one control reference template set by MSE SET.
type crt struct {
	key *key
	alg byte
}

// securityEnv is the current security environment (MSE SET) and the hash
// computed by PSO HASH.
type securityEnv struct {
	ht       hashAlg // 0 = not set
	dst      *crt
	at       *crt
	ct       *crt
	hash     []byte
	hashAlg  hashAlg
	hashOver bool // a hash is pending
}

// chain collects a command sent with command chaining (CLA bit 10).
type chain struct {
	ins, p1, p2 byte
	data        []byte
}

// Card is a virtual CPS3 card. It is safe for concurrent use; like a real
// card it processes one APDU at a time.
type Card struct {
	mu sync.Mutex

	cfg   Config
	atr   []byte
	mf    *file
	app   *file
	keys  map[byte]*key // by SDO reference
	pin   *chv
	puk   *chv
	rand  io.Reader
	now   func() time.Time
	sleep func(time.Duration)

	powered bool
	curDF   *file
	curEF   *file
	se      securityEnv
	pending []byte // T=0 data waiting for GET RESPONSE
	pendSW  uint16
	secret  bool // pending data must not be traced
	// maskResp: the response being traced carries secret data
	maskResp bool
	chain    *chain
	consent  bool // a PIN VERIFY happened since the last signature

	stats      Stats
	state      *stateFile
	stateError error

	// model is Config.Model; cps4 holds the CPS4 model's logical channels
	// (model.go, cps4.go).
	model string
	cps4  *cps4State
}

// NewCard builds a card from cfg. When cfg.StateFile names an existing
// file, the card's identity, codes and counters come from it; otherwise the
// file (if named) is created from cfg.
func NewCard(cfg Config) (*Card, error) {
	cfg, err := cfg.withModel()
	if err != nil {
		return nil, err
	}
	cfg, err = cfg.normalize()
	if err != nil {
		return nil, err
	}
	var st *savedState
	if cfg.StateFile != "" {
		if st, err = loadState(cfg.StateFile); err != nil && !errors.Is(err, errNoState) {
			return nil, err
		}
		if st != nil {
			if cfg, err = st.apply(cfg); err != nil {
				return nil, err
			}
		}
	}
	if err := cfg.validateIdentity(); err != nil {
		return nil, err
	}
	c := &Card{
		cfg:     cfg,
		atr:     bytes.Clone(cps.ATRCPS3Contact),
		rand:    cfg.Rand,
		now:     cfg.Now,
		sleep:   cfg.Sleep,
		powered: true,
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = time.Sleep
	}
	c.keys = map[byte]*key{
		cps.KeySignature &^ 0x80:      {priv: cfg.SignKey, sign: true},
		cps.KeyAuthentication &^ 0x80: {priv: cfg.AuthKey, intAuth: true, decipher: true},
	}
	c.pin = &chv{ref: cfg.Behaviour.PINRef, value: cfg.PIN, maxTries: cps.PINMaxTries, tries: cps.PINMaxTries}
	c.puk = &chv{ref: cfg.Behaviour.PUKRef, value: cfg.PUK, maxTries: cps.PUKMaxTries, tries: cps.PUKMaxTries,
		maxUses: cps.PUKMaxUses, uses: cps.PUKMaxUses}
	if st != nil {
		st.applyCounters(c.pin, c.puk)
	}
	p15 := buildPKCS15(cfg, cfg.SignKey.N.BitLen(), cfg.AuthKey.N.BitLen())
	c.mf, c.app = buildFS(cfg, p15)
	c.curDF = c.mf
	c.initModel(p15)
	if cfg.StateFile != "" {
		c.state = &stateFile{path: cfg.StateFile}
		if err := c.persist(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Config returns the card's configuration after defaults and state file.
func (c *Card) Config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	cfg.PIN, cfg.PUK = c.pin.value, c.puk.value
	cfg.SignCert, cfg.AuthCert = bytes.Clone(cfg.SignCert), bytes.Clone(cfg.AuthCert)
	return cfg
}

// ATR returns the card's ATR (the CPS3 contact ATR unless Config.Model says otherwise).
func (c *Card) ATR() []byte { return bytes.Clone(c.atr) }

// Serial returns the 10-digit card number stored in EF.SN.ICC.
func (c *Card) Serial() string { return c.cfg.Serial }

// Reset is a warm reset: the verified state, the current file (back to the
// MF), the security environment, a pending hash and any pending response
// are cleared. It also powers the card on.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearVolatile()
	c.powered = true
	c.stats.Resets++
	c.traceEvent("reset")
}

// PowerOff removes power: the card loses its volatile state and Transmit
// fails with ErrPoweredOff until PowerOn or Reset.
func (c *Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearVolatile()
	c.powered = false
	c.traceEvent("power off")
}

// PowerOn powers the card (cold reset).
func (c *Card) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.powered {
		c.clearVolatile()
		c.stats.PowerOns++
	}
	c.powered = true
	c.traceEvent("power on")
}

func (c *Card) clearVolatile() {
	c.pin.verified, c.puk.verified = false, false
	c.consent = false
	c.curDF, c.curEF = c.mf, nil
	c.se = securityEnv{}
	c.pending, c.secret, c.chain = nil, false, nil
	c.resetModel()
}

// Transmit processes one command APDU and returns the response APDU. It
// satisfies apdu.Transmitter. The only error is ErrPoweredOff; every card
// condition is a status word.
func (c *Card) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.powered {
		return nil, ErrPoweredOff
	}
	before := c.stats
	resp := c.process(cmd)
	c.stats.APDUs++
	c.stats.BytesIn += int64(len(cmd))
	c.stats.BytesOut += int64(len(resp))
	c.traceExchange(cmd, resp)
	if d := c.cfg.Latency.cost(len(cmd), len(resp), c.stats.rsaOps()-before.rsaOps()); d > 0 {
		c.stats.Latency += d
		c.sleep(d)
	}
	return resp, nil
}

// response is what a command handler produces before the transport layer
// shapes it (61 xx under T=0).
type response struct {
	data   []byte
	sw     uint16
	direct bool // case-2 data sent in the same exchange (READ BINARY, GET CHALLENGE)
	secret bool // data must not appear in a trace
}

func sw(s uint16) response { return response{sw: s} }

func (c *Card) process(raw []byte) []byte {
	if resp, done := c.processModel(raw); done {
		return resp
	}
	c.maskResp = false
	cmd, err := apdu.ParseCommand(raw)
	if err != nil {
		c.pending, c.chain = nil, nil
		return swBytes(apdu.SWWrongLength)
	}
	if cmd.INS != apdu.InsGetResponse {
		c.pending, c.secret = nil, false
	}
	switch {
	case cmd.CLA == 0x00 || cmd.CLA == apdu.ClaChaining:
	case cmd.CLA < 0x80 && cmd.CLA&0x03 != 0:
		return swBytes(apdu.SWLogicalChannelNotSupp)
	case cmd.CLA < 0x80 && cmd.CLA&0x0C != 0:
		return swBytes(swSMNotSupported)
	default:
		return swBytes(apdu.SWCLANotSupported)
	}
	if cmd.INS&0xF0 == 0x60 || cmd.INS&0xF0 == 0x90 {
		return swBytes(apdu.SWINSNotSupported) // 6x and 9x are not instructions
	}

	// Command chaining: collect, answer 90 00, run the command on its last
	// part. A command that does not continue the chain abandons it.
	if cmd.CLA == apdu.ClaChaining {
		if cmd.INS != apdu.InsPerformSecurityOp && cmd.INS != apdu.InsInternalAuthenticate {
			c.chain = nil
			return swBytes(swChainingNotSupp)
		}
		if c.chain == nil || c.chain.ins != cmd.INS || c.chain.p1 != cmd.P1 || c.chain.p2 != cmd.P2 {
			c.chain = &chain{ins: cmd.INS, p1: cmd.P1, p2: cmd.P2}
		}
		if cmd.Le != apdu.NoLe || len(c.chain.data)+len(cmd.Data) > maxChainedData {
			c.chain = nil
			return swBytes(apdu.SWWrongLength)
		}
		c.chain.data = append(c.chain.data, cmd.Data...)
		return swBytes(apdu.SWSuccess)
	}
	if ch := c.chain; ch != nil {
		c.chain = nil
		if ch.ins == cmd.INS && ch.p1 == cmd.P1 && ch.p2 == cmd.P2 {
			if len(ch.data)+len(cmd.Data) > maxChainedData {
				return swBytes(apdu.SWWrongLength)
			}
			cmd.Data = append(ch.data, cmd.Data...)
		}
	}

	var r response
	switch cmd.INS {
	case apdu.InsGetResponse:
		return c.getResponse(cmd)
	case apdu.InsSelect:
		r = c.selectFile(cmd)
	case apdu.InsReadBinary:
		r = c.readBinary(cmd)
	case apdu.InsGetData:
		r = c.getData(cmd)
	case apdu.InsVerify:
		r = c.verify(cmd)
	case apdu.InsChangeReferenceData:
		r = c.changeReferenceData(cmd)
	case apdu.InsResetRetryCounter:
		r = c.resetRetryCounter(cmd)
	case apdu.InsManageSecurityEnv:
		r = c.manageSecurityEnv(cmd)
	case apdu.InsPerformSecurityOp:
		r = c.performSecurityOp(cmd)
	case apdu.InsInternalAuthenticate:
		r = c.internalAuthenticate(cmd)
	case apdu.InsGetChallenge:
		r = c.getChallenge(cmd)
	case 0xD6, 0xD7, 0x0E, 0xDA, 0xDB, 0x46, 0x47, 0xE0, 0xE4:
		// UPDATE/ERASE BINARY, PUT DATA, GENERATE KEY, CREATE/DELETE FILE:
		// administration needs secure messaging (SCB 45), which this card
		// does not offer.
		r = sw(apdu.SWSecurityStatus)
	default:
		return swBytes(apdu.SWINSNotSupported)
	}
	return c.shape(cmd, r)
}

// shape applies the transport rules to a handler's answer.
func (c *Card) shape(cmd apdu.Command, r response) []byte {
	if len(r.data) == 0 {
		return swBytes(r.sw)
	}
	if r.direct || c.cfg.Behaviour.Transport == "t1" && cmd.Le != apdu.NoLe && len(r.data) <= cmd.Le {
		c.maskResp = r.secret
		return append(bytes.Clone(r.data), byte(r.sw>>8), byte(r.sw))
	}
	c.pending, c.pendSW, c.secret = r.data, r.sw, r.secret
	return swBytes(swMoreDataPrefix | uint16(len(r.data)&0xFF)) // 61 00 = 256 or more
}

// getResponse serves pending data in pieces: Le bytes and 61 yy while more
// remain, 6C xx when Le asks for more than there is.
func (c *Card) getResponse(cmd apdu.Command) []byte {
	c.stats.GetResponses++
	if cmd.P1 != 0 || cmd.P2 != 0 {
		c.pending = nil
		return swBytes(apdu.SWIncorrectP1P2)
	}
	if len(cmd.Data) > 0 || cmd.Le == apdu.NoLe {
		c.pending = nil
		return swBytes(apdu.SWWrongLength)
	}
	if len(c.pending) == 0 {
		return swBytes(apdu.SWConditionsNotSatisfied)
	}
	if cmd.Le > len(c.pending) {
		return swBytes(swWrongLePrefix | uint16(len(c.pending)&0xFF))
	}
	c.maskResp = c.secret
	out := bytes.Clone(c.pending[:cmd.Le])
	c.pending = c.pending[cmd.Le:]
	if len(c.pending) == 0 {
		c.pending = nil
		return append(out, byte(c.pendSW>>8), byte(c.pendSW))
	}
	return append(out, 0x61, byte(len(c.pending)&0xFF))
}

func swBytes(s uint16) []byte { return []byte{byte(s >> 8), byte(s)} }

// selectFile implements SELECT (card-cpx.md §5.2).
func (c *Card) selectFile(cmd apdu.Command) response {
	name := cmd.Data
	if cmd.P2 != 0x04 && cmd.P2 != 0x0C {
		// The real card answers a bare 90 00 to the root AID with P2 00
		// (OSC#2223) and 6A 86 to everything else with P2 00.
		if cmd.P1 == 0x04 && cmd.P2 == 0x00 && bytes.Equal(name, cps.AIDIASECCRoot) {
			c.setCurrent(c.mf, nil, true)
			return sw(apdu.SWSuccess)
		}
		return sw(apdu.SWIncorrectP1P2)
	}
	var target *file
	var st uint16
	switch cmd.P1 {
	case 0x00: // MF, or a file of the current DF by FID
		switch {
		case len(name) == 0:
			target = c.mf
		case len(name) != 2:
			return sw(swLcInconsistent)
		case fidOf(name) == cps.FIDMF:
			target = c.mf
		default:
			target = c.curDF.child(fidOf(name))
		}
	case 0x01: // child DF
		if len(name) != 2 {
			return sw(swLcInconsistent)
		}
		if f := c.curDF.child(fidOf(name)); f != nil && f.df {
			target = f
		}
	case 0x02: // EF under the current DF; OpenSC also sends 3F00 this way
		if len(name) != 2 {
			return sw(swLcInconsistent)
		}
		if fidOf(name) == cps.FIDMF {
			target = c.mf
		} else if f := c.curDF.child(fidOf(name)); f != nil && !f.df {
			target = f
		}
	case 0x03: // parent DF
		if len(name) != 0 {
			return sw(swLcInconsistent)
		}
		target = c.curDF.parent
	case 0x04: // DF name
		if len(name) == 0 || len(name) > 16 {
			return sw(swLcInconsistent)
		}
		switch {
		case bytes.Equal(name, cps.AIDIASECCRoot):
			target = c.mf
		case bytes.Equal(name, c.app.name):
			target = c.app
		}
	case 0x08, 0x09: // path from the MF / from the current DF
		target, st = c.walkPath(cmd.P1, name)
		if st != 0 {
			return sw(st)
		}
	default:
		return sw(apdu.SWIncorrectP1P2)
	}
	if target == nil {
		return sw(apdu.SWFileNotFound)
	}
	if target.df {
		c.setCurrent(target, nil, cmd.P1 == 0x04)
	} else {
		c.setCurrent(target.parent, target, false)
	}
	if cmd.P2 == 0x0C {
		return sw(apdu.SWSuccess)
	}
	return response{data: target.fcp(), sw: apdu.SWSuccess}
}

// walkPath resolves a SELECT path. P1 08 starts at the MF (path without
// 3F00); P1 09 starts at the current DF, or at the MF when the path begins
// with 3F00, as CPx cards expect it (card-cpx.md §5.2).
func (c *Card) walkPath(p1 byte, path []byte) (*file, uint16) {
	if len(path) == 0 || len(path)%2 != 0 {
		return nil, swLcInconsistent
	}
	cur := c.curDF
	if p1 == 0x08 {
		cur = c.mf
	} else if fidOf(path) == cps.FIDMF {
		cur = c.mf
		path = path[2:]
	}
	for len(path) > 0 {
		if !cur.df {
			return nil, apdu.SWFileNotFound
		}
		next := cur.child(fidOf(path))
		if next == nil {
			return nil, apdu.SWFileNotFound
		}
		cur, path = next, path[2:]
	}
	return cur, 0
}

// setCurrent changes the current DF and EF. Leaving a DF drops its
// security environment and pending hash (key references are local to DF
// 0001).
func (c *Card) setCurrent(df, ef *file, appSelect bool) {
	if df != c.curDF {
		c.se = securityEnv{}
	}
	if appSelect && c.cfg.Behaviour.AppSelectClearsPIN && (df == c.mf || df == c.app) {
		c.pin.verified, c.puk.verified, c.consent = false, false, false
	}
	if ef == nil && c.cfg.Behaviour.SelectClearsPIN && (df == c.mf || df == c.app) {
		// A SELECT of the DF itself (ef == nil), however it was named.
		c.pin.verified, c.puk.verified, c.consent = false, false, false
	}
	c.curDF, c.curEF = df, ef
}

func fidOf(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// readBinary implements READ BINARY with an offset (P1 bit 8 clear) or a
// short EF identifier (P1 = 80|SFI, P2 = offset).
func (c *Card) readBinary(cmd apdu.Command) response {
	if len(cmd.Data) > 0 || cmd.Le == apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	ef := c.curEF
	var off int
	if cmd.P1&0x80 != 0 {
		if cmd.P1&0x60 != 0 {
			return sw(apdu.SWIncorrectP1P2)
		}
		ef = c.curDF.childBySFI(cmd.P1 & 0x1F)
		if ef == nil {
			return sw(apdu.SWFileNotFound)
		}
		c.curEF = ef
		off = int(cmd.P2)
	} else {
		if ef == nil {
			return sw(swNoCurrentEF)
		}
		off = int(cmd.P1)<<8 | int(cmd.P2)
	}
	if !ef.readable() {
		return sw(apdu.SWSecurityStatus)
	}
	if off >= len(ef.data) {
		return sw(apdu.SWWrongP1P2)
	}
	left := len(ef.data) - off
	if cmd.Le <= left {
		return response{data: ef.data[off : off+cmd.Le], sw: apdu.SWSuccess, direct: true}
	}
	if c.cfg.Behaviour.ReadPastEOF == "6C" {
		return sw(swWrongLePrefix | uint16(left))
	}
	return response{data: ef.data[off:], sw: apdu.SWEndOfFile, direct: true}
}

// getChallenge returns 8 random bytes (IAS-ECC only knows Le = 8).
func (c *Card) getChallenge(cmd apdu.Command) response {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return sw(apdu.SWIncorrectP1P2)
	}
	if len(cmd.Data) > 0 || cmd.Le == apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	if cmd.Le != 8 {
		return sw(swWrongLePrefix | 8)
	}
	b := make([]byte, 8)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return sw(apdu.SWNoPreciseDiagnosis)
	}
	return response{data: b, sw: apdu.SWSuccess, direct: true}
}

// String describes the card for logs (never a secret).
func (c *Card) String() string {
	return fmt.Sprintf("virtual %s %s (%s)", modelTitle(c.model), c.cfg.Serial, c.cfg.Holder)
}
