package cps

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// CPS4 is the Profile of CPS4 cards: the NXP ChipDoc applet, reached on a
// logical channel, which is not IAS-ECC on the crypto side (card-cpx.md
// §4.4). Every card value comes from Facts (CPS4Facts, one table from one
// source); the PIN encoding and padding come from Quirks, as ANS applies
// the same PIN rules to both generations.
//
// The public results are those of the CPS3 profile: Authenticate returns
// RSA PKCS#1 v1.5 (type 1) over the caller's data, Sign RSA PKCS#1 v1.5
// with SHA-256 over the message. Only the way there differs: the host
// hashes the whole message (PSO CDS takes the hash as data), and it pads
// the authentication input itself (PSO DECIPHER of a type-1 block).
//
// A CPS4 value serves one transaction: it remembers whether the applet is
// already selected on the channel (the engine builds a new one per
// transaction, and a transaction has the card to itself).
type CPS4 struct {
	Quirks Quirks
	Facts  CPS4Table

	authBits int  // modulus of the authentication key, when the engine knows it
	open     bool // the applet is selected on the channel in this transaction
}

var (
	_ Profile      = (*CPS4)(nil)
	_ AuthKeySizer = (*CPS4)(nil)
)

// NewCPS4 returns the CPS4 profile with the given quirks and facts.
func NewCPS4(q Quirks, f CPS4Table) *CPS4 { return &CPS4{Quirks: q, Facts: f} }

// Type implements Profile.
func (p *CPS4) Type() CardType { return CardType{Generation: GenerationCPS4, Supported: true} }

// SetAuthKeyBits implements AuthKeySizer.
func (p *CPS4) SetAuthKeyBits(bits int) { p.authBits = bits }

// logicalChannel is the channel number carried by CLA (ISO 7816-4 first
// interindustry values: channels 0 to 3 in b2-b1).
func (p *CPS4) logicalChannel() byte { return p.Facts.CLA & 0x03 }

func (p *CPS4) cmd(ins, p1, p2 byte, data []byte, le int) apdu.Command {
	return apdu.Command{CLA: p.Facts.CLA, INS: ins, P1: p1, P2: p2, Data: data, Le: le}
}

// selectApplet selects the ChipDoc applet on the channel, once per
// transaction:
//
//	01 A4 04 0C 08 80 25 00 00 01 FF 01 00
//
// A 68 81 (channel not open) is answered, when Facts.ManageChannelOpen, by
// MANAGE CHANNEL 00 70 00 01 and a second SELECT.
func (p *CPS4) selectApplet(ch *apdu.Channel) error {
	if p.open {
		return nil
	}
	sel := p.cmd(apdu.InsSelect, 0x04, p.Facts.AppletSelectP2, p.Facts.AppletAID, apdu.NoLe)
	r, err := ch.Do(sel)
	if err != nil {
		return fmt.Errorf("select the ChipDoc applet: %w", err)
	}
	if r.SW == p.Facts.ChannelNotSupportedSW && p.Facts.ManageChannelOpen && p.logicalChannel() != 0 {
		open := apdu.Command{CLA: 0x00, INS: insManageChannel, P1: 0x00, P2: p.logicalChannel(), Le: apdu.NoLe}
		if _, err := ch.Send(open); err != nil {
			return fmt.Errorf("open logical channel %d: %w", p.logicalChannel(), err)
		}
		if r, err = ch.Do(sel); err != nil {
			return fmt.Errorf("select the ChipDoc applet: %w", err)
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("select the ChipDoc applet %X: %w", p.Facts.AppletAID, err)
	}
	p.open = true
	return nil
}

// insManageChannel is MANAGE CHANNEL (ISO 7816-4 §11.1.2).
const insManageChannel = 0x70

// do sends c on the channel, selecting the applet first when needed. A
// 68 81 answer (the channel was closed under us) selects the applet again
// and resends once, as the Cryptolib does for the PIN counter; the command
// was not processed, so resending a VERIFY consumes no try.
func (p *CPS4) do(ch *apdu.Channel, c apdu.Command) (apdu.Response, error) {
	if err := p.selectApplet(ch); err != nil {
		return apdu.Response{}, err
	}
	r, err := ch.Do(c)
	if err != nil {
		return r, err
	}
	if r.SW == p.Facts.ChannelNotSupportedSW {
		p.open = false
		if err := p.selectApplet(ch); err != nil {
			return apdu.Response{}, err
		}
		return ch.Do(c)
	}
	return r, nil
}

// send is do followed by Response.Err.
func (p *CPS4) send(ch *apdu.Channel, c apdu.Command, what string) ([]byte, error) {
	r, err := p.do(ch, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := r.Err(); err != nil {
		return r.Data, fmt.Errorf("%s: %w", what, err)
	}
	return r.Data, nil
}

// readBinary reads up to le bytes at offset of the current EF. eof reports
// 62 82, 6B 00 or a short answer.
func (p *CPS4) readBinary(ch *apdu.Channel, offset, le int) (data []byte, eof bool, err error) {
	if offset < 0 || offset > 0x7FFF || le < 1 || le > apdu.MaxShortLe {
		return nil, false, fmt.Errorf("%w: read binary at %d, %d bytes", ErrFormat, offset, le)
	}
	r, err := p.do(ch, p.cmd(apdu.InsReadBinary, byte(offset>>8), byte(offset), nil, le))
	if err != nil {
		return nil, false, fmt.Errorf("read binary at %d: %w", offset, err)
	}
	switch r.SW {
	case apdu.SWSuccess:
		return r.Data, len(r.Data) < le, nil
	case apdu.SWEndOfFile:
		return r.Data, true, nil
	case apdu.SWWrongP1P2:
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("read binary at %d: %w", offset, r.Err())
}

// readFrom continues a read of the current EF: have holds the bytes read
// from offset 0; size is the total when known, -1 to read until the end.
func (p *CPS4) readFrom(ch *apdu.Channel, have []byte, size int) ([]byte, error) {
	chunk := p.Facts.ReadChunk
	if chunk < 1 || chunk > apdu.MaxShortLe {
		return nil, fmt.Errorf("%w: CPS4 read chunk %d", ErrFormat, chunk)
	}
	out := have
	for size < 0 || len(out) < size {
		le := chunk
		if size >= 0 && size-len(out) < le {
			le = size - len(out)
		}
		if len(out) > 0x7FFF {
			return nil, fmt.Errorf("%w: file larger than 32767 bytes", ErrFormat)
		}
		data, eof, err := p.readBinary(ch, len(out), le)
		if err != nil {
			return nil, err
		}
		out = append(out, data...)
		if eof {
			if size >= 0 && len(out) < size {
				return nil, fmt.Errorf("read binary: file ends at %d, expected %d bytes: %w", len(out), size, apdu.ErrEndOfFile)
			}
			break
		}
	}
	return out, nil
}

// ReadSerial reads EF.SN.ICC with the applet current, 3 APDUs on a new
// transaction (2 once the applet is selected):
//
//	01 A4 04 0C 08 80 25 00 00 01 FF 01 00   SELECT the applet
//	01 A4 00 0C 02 D0 03                     SELECT EF.SN.ICC by FID
//	01 B0 00 00 0C                           READ BINARY 12 bytes
func (p *CPS4) ReadSerial(ch *apdu.Channel) (string, error) {
	fid := fidPath(p.Facts.SerialFID)
	if _, err := p.send(ch, p.cmd(apdu.InsSelect, 0x00, 0x0C, fid, apdu.NoLe), "select EF.SN.ICC"); err != nil {
		return "", fmt.Errorf("reading EF.SN.ICC: %w", err)
	}
	b, _, err := p.readBinary(ch, 0, p.Facts.SerialSize)
	if err != nil {
		return "", fmt.Errorf("reading EF.SN.ICC: %w", err)
	}
	return ParseSNICC(b)
}

// relPath decodes a table path (hex, from the applet root, without 3F00).
func relPath(s, what string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < 2 || len(b)%2 != 0 || (b[0] == 0x3F && b[1] == 0x00) {
		return nil, fmt.Errorf("%w: CPS4 %s %q is not a hex path without 3F00", ErrFormat, what, s)
	}
	return b, nil
}

// selectPath selects a file by its path from the applet root:
// 01 A4 08 0C Lc path (P1 from Facts.PathSelectP1). A path starting with
// 3F00 (from a PKCS#15 directory) loses it first.
func (p *CPS4) selectPath(ch *apdu.Channel, path []byte) error {
	if len(path) >= 2 && path[0] == 0x3F && path[1] == 0x00 {
		path = path[2:]
	}
	if len(path) < 2 || len(path)%2 != 0 {
		return fmt.Errorf("%w: select path % X", ErrFormat, path)
	}
	_, err := p.send(ch, p.cmd(apdu.InsSelect, p.Facts.PathSelectP1, 0x0C, path, apdu.NoLe), fmt.Sprintf("select path %X", path))
	return err
}

// ReadCertificates reads the two certificates: per certificate one SELECT
// by path (01 A4 08 0C 04 0001 A00x) and READ BINARY in ReadChunk pieces,
// the last one exactly to the DER length. A path answering 6A 82 switches
// to the PKCS#15 directory of AppDFPath (ODF → CDF).
func (p *CPS4) ReadCertificates(ch *apdu.Channel) (auth, sign []byte, err error) {
	r := &certReader{
		decodePath: func(path, what string) ([]byte, error) { return relPath(path, what+"CertPath") },
		selectEF:   func(path []byte) error { return p.selectPath(ch, path) },
		readDER:    func() ([]byte, error) { return p.readDER(ch) },
		pkcs15:     func() (map[KeyRole][]byte, error) { return p.certificatesFromPKCS15(ch) },
	}
	return r.readBoth(p.Facts.AuthCertPath, "auth", p.Facts.SignCertPath, "sign")
}

// readDER reads one DER object from the start of the current EF.
func (p *CPS4) readDER(ch *apdu.Channel) ([]byte, error) {
	first, _, err := p.readBinary(ch, 0, p.Facts.ReadChunk)
	if err != nil {
		return nil, err
	}
	return completeDER(first, func(total int) ([]byte, error) { return p.readFrom(ch, first, total) })
}

func (p *CPS4) certificatesFromPKCS15(ch *apdu.Channel) (map[KeyRole][]byte, error) {
	rel, err := relPath(p.Facts.AppDFPath, "appDfPath")
	if err != nil {
		return nil, err
	}
	appDF := append(fidPath(FIDMF), rel...)
	return certificatesFromPKCS15(appDF, func(path []byte) ([]byte, error) {
		if err := p.selectPath(ch, path); err != nil {
			return nil, err
		}
		return p.readFrom(ch, nil, -1)
	})
}

// chvStatus sends VERIFY without data (01 20 00 <ref>): 90 00 verified,
// 63 Cx tries left (63 C0 blocked per Facts), 69 83 blocked. No try is
// consumed.
func (p *CPS4) chvStatus(ch *apdu.Channel, ref byte, max int, what string) (CHVState, error) {
	r, err := p.do(ch, p.cmd(apdu.InsVerify, 0x00, ref, nil, apdu.NoLe))
	if err != nil {
		return CHVState{}, fmt.Errorf("reading %s status: %w", what, err)
	}
	st := CHVState{TriesLeft: -1, MaxTries: max, UsesLeft: -1}
	se := &apdu.StatusError{SW: r.SW}
	switch n, isTries := se.TriesLeft(); {
	case r.SW == apdu.SWSuccess:
		st.Verified = true
	case isTries:
		st.TriesLeft = n
		st.Blocked = n == 0 && p.Facts.BlockedOn63C0
	case r.SW == apdu.SWAuthBlocked:
		st.Blocked = true
	default:
		return CHVState{}, fmt.Errorf("reading %s status: %w", what, r.Err())
	}
	if st.Blocked {
		st.TriesLeft = 0
	}
	return st, nil
}

// PINStatus: 01 20 00 01 (after the applet SELECT on a new transaction).
func (p *CPS4) PINStatus(ch *apdu.Channel) (CHVState, error) {
	return p.chvStatus(ch, p.Facts.PINRef, p.Facts.PINMaxTries, "PIN")
}

// PUKStatus: 01 20 00 02. The ChipDoc applet tells no usage counter.
func (p *CPS4) PUKStatus(ch *apdu.Channel) (CHVState, error) {
	return p.chvStatus(ch, p.Facts.PUKRef, p.Facts.PUKMaxTries, "PUK")
}

// verify presents an encoded PIN (or PUK): 01 20 00 <ref> Lc data.
func (p *CPS4) verify(ch *apdu.Channel, ref byte, enc []byte, puk bool) error {
	_, err := p.send(ch, p.cmd(apdu.InsVerify, 0x00, ref, enc, apdu.NoLe), "verify")
	return chvError(err, puk, p.Facts.BlockedOn63C0)
}

// modulusBytes is the authentication key size in bytes.
func (p *CPS4) modulusBytes() int {
	bits := p.authBits
	if bits <= 0 {
		bits = p.Facts.ModulusBits
	}
	return (bits + 7) / 8
}

// PKCS1Type1Block returns the PKCS#1 v1.5 signature encoding of data for a
// modulus of k bytes: 00 01 FF…FF 00 data, with at least 8 bytes of FF
// (RFC 8017 §9.2 step 5). The CPS4 has no INTERNAL AUTHENTICATE: the host
// builds this block and the card applies its raw RSA private operation.
func PKCS1Type1Block(data []byte, k int) ([]byte, error) {
	if len(data) == 0 || len(data) > k-11 {
		return nil, fmt.Errorf("%w: %d bytes do not fit a PKCS#1 type-1 block of %d bytes", ErrFormat, len(data), k)
	}
	em := make([]byte, k)
	em[1] = 0x01
	for i := 2; i < k-len(data)-1; i++ {
		em[i] = 0xFF
	}
	copy(em[k-len(data):], data)
	return em, nil
}

// Authenticate signs caller data with the authentication key 0x20 (§4.4),
// 5 APDUs on a new transaction (T=1; +1 GET RESPONSE under T=0):
//
//	01 A4 04 0C 08 <applet AID>         SELECT the applet
//	01 20 00 01 04 ** ** ** **          VERIFY
//	01 22 41 B8 03 83 01 20             MSE SET CT, key 0x20
//	11 2A 80 86 FF <255 bytes>          PSO DECIPHER of 00 01 FF…FF 00 data,
//	01 2A 80 86 01 <1 byte> 00          chained → the 256-byte signature
func (p *CPS4) Authenticate(ch *apdu.Channel, pin, data []byte) ([]byte, error) {
	if err := checkAuthInput(data); err != nil {
		return nil, err
	}
	k := p.modulusBytes()
	block, err := PKCS1Type1Block(data, k)
	if err != nil {
		return nil, err
	}
	enc, err := EncodePIN(p.Quirks, pin, PINLength)
	if err != nil {
		return nil, err
	}
	defer clear(enc)
	if err := p.verify(ch, p.Facts.PINRef, enc, false); err != nil {
		return nil, err
	}
	mse := []byte{p.Facts.AuthMSETag, 0x01, p.Facts.AuthKeyRef}
	if _, err := p.send(ch, p.cmd(apdu.InsManageSecurityEnv, p.Facts.AuthMSEP1, p.Facts.AuthMSEP2, mse, apdu.NoLe), "MSE SET (authentication)"); err != nil {
		return nil, err
	}
	sig, err := p.send(ch, p.cmd(apdu.InsPerformSecurityOp, 0x80, 0x86, block, apdu.MaxShortLe), "PSO DECIPHER (authentication)")
	if err != nil {
		return nil, err
	}
	if len(sig) != k {
		return nil, fmt.Errorf("%w: authentication answer of %d bytes, want %d", ErrFormat, len(sig), k)
	}
	return sig, nil
}

// Sign signs msg with the non-repudiation key, RSA PKCS#1 v1.5 with
// SHA-256; the host hashes the whole message (§4.4), 4 APDUs on a new
// transaction (T=1; +1 GET RESPONSE under T=0):
//
//	01 A4 04 0C 08 <applet AID>         SELECT the applet
//	01 20 00 01 04 ** ** ** **          VERIFY
//	01 22 81 B6 04 91 02 28 A1          MSE SET DST, SHA-256 PKCS#1, key|80
//	01 2A 9E 9A 20 <SHA-256> 00         PSO CDS → the 256-byte signature
func (p *CPS4) Sign(ch *apdu.Channel, pin, msg []byte) ([]byte, error) {
	enc, err := EncodePIN(p.Quirks, pin, PINLength)
	if err != nil {
		return nil, err
	}
	defer clear(enc)
	h := sha256.Sum256(msg)
	if err := p.verify(ch, p.Facts.PINRef, enc, false); err != nil {
		return nil, err
	}
	mse := []byte{p.Facts.SignMSETag, 0x02, p.Facts.SignAlgSHA256, p.Facts.SignKeyRef | p.Facts.SignKeyHashBit}
	if _, err := p.send(ch, p.cmd(apdu.InsManageSecurityEnv, p.Facts.SignMSEP1, p.Facts.SignMSEP2, mse, apdu.NoLe), "MSE SET (signature)"); err != nil {
		return nil, err
	}
	return p.send(ch, p.cmd(apdu.InsPerformSecurityOp, 0x9E, 0x9A, h[:], apdu.MaxShortLe), "PSO COMPUTE DIGITAL SIGNATURE")
}

// ChangePIN: VERIFY the current PIN, then CHANGE REFERENCE DATA with the new
// one only (P1 01), 3 APDUs on a new transaction:
//
//	01 20 00 01 04 ** ** ** **
//	01 24 01 01 04 ** ** ** **
func (p *CPS4) ChangePIN(ch *apdu.Channel, oldPIN, newPIN []byte) error {
	encOld, encNew, err := encodePINPair(p.Quirks, oldPIN, PINLength, newPIN)
	if err != nil {
		return err
	}
	defer clear(encOld)
	defer clear(encNew)
	if err := p.verify(ch, p.Facts.PINRef, encOld, false); err != nil {
		return err
	}
	return p.change(ch, encNew)
}

func (p *CPS4) change(ch *apdu.Channel, encNew []byte) error {
	_, err := p.send(ch, p.cmd(apdu.InsChangeReferenceData, p.Facts.ChangeP1, p.Facts.PINRef, encNew, apdu.NoLe), "change reference data")
	return chvError(err, false, p.Facts.BlockedOn63C0)
}

// Unblock: VERIFY the PUK, RESET RETRY COUNTER of the PIN (case 1), then
// CHANGE REFERENCE DATA with the new PIN, 4 APDUs on a new transaction:
//
//	01 20 00 02 08 ** ** ** ** ** ** ** **
//	01 2C 03 81
//	01 24 01 01 04 ** ** ** **
func (p *CPS4) Unblock(ch *apdu.Channel, puk, newPIN []byte) error {
	encPUK, encNew, err := encodePINPair(p.Quirks, puk, PUKLength, newPIN)
	if err != nil {
		return err
	}
	defer clear(encPUK)
	defer clear(encNew)
	if err := p.verify(ch, p.Facts.PUKRef, encPUK, true); err != nil {
		return err
	}
	rrc := p.cmd(apdu.InsResetRetryCounter, p.Facts.UnblockP1, p.Facts.PINRef|p.Facts.UnblockRefBit, nil, apdu.NoLe)
	if _, err := p.send(ch, rrc, "reset retry counter"); err != nil {
		if errors.Is(err, apdu.ErrAuthBlocked) {
			return fmt.Errorf("%w: %w", ErrPUKBlocked, err)
		}
		return err
	}
	return p.change(ch, encNew)
}
