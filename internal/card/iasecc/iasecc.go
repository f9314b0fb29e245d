// Package iasecc implements the IAS-ECC commands the agent sends to a CPS3
// card, one function per command, each over an *apdu.Channel (which owns
// T=0 GET RESPONSE, 6Cxx and chaining). Section numbers refer to
// /work/shared/docs/card-cpx.md.
//
// Functions return the card's status as an *apdu.StatusError wrapped with
// the command name; interpreting it (wrong PIN, blocked, ...) is the
// profile's job (package cps).
package iasecc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

const cla = 0x00

// SELECT P2 values (§5.2): 04 returns the FCP, 0C returns nothing. P2=00 is
// refused by CPx cards with 6A 86.
const (
	P2ReturnFCP byte = 0x04
	P2NoData    byte = 0x0C
)

// SelectMF selects the MF by its FID: 00 A4 00 0C 02 3F 00 (§5.2).
func SelectMF(ch *apdu.Channel) error {
	_, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsSelect, P1: 0x00, P2: P2NoData, Data: []byte{0x3F, 0x00}, Le: apdu.NoLe})
	if err != nil {
		return fmt.Errorf("select MF: %w", err)
	}
	return nil
}

// SelectPath selects a file by its path from the MF, written with its
// leading 3F00 (P1=09, §5.2): 00 A4 09 0C 04 3F 00 D0 03. With fcp set, P2=04
// and the FCP is parsed (T=0: 61 xx + GET RESPONSE, 2 APDUs); otherwise P2=0C
// (1 APDU) and the result is nil.
func SelectPath(ch *apdu.Channel, path []byte, fcp bool) (*FCP, error) {
	if len(path) < 4 || len(path)%2 != 0 || path[0] != 0x3F || path[1] != 0x00 {
		return nil, fmt.Errorf("select path % X: %w: a path starts with 3F00 and names at least one file", path, ErrFormat)
	}
	return selectCmd(ch, 0x09, path, fcp, "path")
}

// SelectAID selects an application by its AID (P1=04, §2.1, §5.2).
func SelectAID(ch *apdu.Channel, aid []byte, fcp bool) (*FCP, error) {
	if len(aid) == 0 || len(aid) > 16 {
		return nil, fmt.Errorf("select AID % X: %w: AID length", aid, ErrFormat)
	}
	return selectCmd(ch, 0x04, aid, fcp, "AID")
}

func selectCmd(ch *apdu.Channel, p1 byte, data []byte, fcp bool, what string) (*FCP, error) {
	p2 := P2NoData
	if fcp {
		p2 = P2ReturnFCP
	}
	// Case 3 as in the vendor traces; the card answers 61 xx when it has an FCP.
	resp, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsSelect, P1: p1, P2: p2, Data: data, Le: apdu.NoLe})
	if err != nil {
		return nil, fmt.Errorf("select %s %X: %w", what, data, err)
	}
	if !fcp {
		return nil, nil
	}
	if len(resp) == 0 {
		// OpenSC fabricates a DF FCP when a SELECT by name returns none (§2.3).
		return &FCP{Size: -1, Descriptor: 0x38}, nil
	}
	f, err := ParseFCP(resp)
	if err != nil {
		return nil, fmt.Errorf("select %s %X: %w", what, data, err)
	}
	return f, nil
}

// MaxOffset is the largest READ BINARY offset with P1 bit 8 clear (§5.2).
const MaxOffset = 0x7FFF

// ReadBinary reads up to le bytes at offset of the current EF:
// 00 B0 off_hi off_lo Le. eof reports 62 82 (short read at end of file, data
// returned; OpenSC treats it as success), 6B 00 (offset beyond the end) or a
// short answer with 90 00. 6C xx is handled by the Channel.
func ReadBinary(ch *apdu.Channel, offset, le int) (data []byte, eof bool, err error) {
	if offset < 0 || offset > MaxOffset || le < 1 || le > apdu.MaxShortLe {
		return nil, false, fmt.Errorf("read binary at %d, %d bytes: %w", offset, le, ErrFormat)
	}
	r, err := ch.Do(apdu.Command{CLA: cla, INS: apdu.InsReadBinary, P1: byte(offset >> 8), P2: byte(offset), Le: le})
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

// ReadAll reads the current EF from offset 0 in chunks of at most chunk
// bytes: exactly size bytes when size >= 0 (from the FCP), otherwise until
// the card signals the end (62 82, 6B 00 or a short chunk).
func ReadAll(ch *apdu.Channel, size, chunk int) ([]byte, error) {
	return ReadFrom(ch, nil, size, chunk)
}

// ReadFrom continues a read: have holds the bytes already read from offset
// 0, size is the total size when known (-1 otherwise).
func ReadFrom(ch *apdu.Channel, have []byte, size, chunk int) ([]byte, error) {
	if chunk < 1 || chunk > apdu.MaxShortLe {
		return nil, fmt.Errorf("read binary chunk %d: %w", chunk, ErrFormat)
	}
	if size > MaxOffset+chunk {
		return nil, fmt.Errorf("read binary: file of %d bytes: %w", size, ErrFormat)
	}
	out := have
	for size < 0 || len(out) < size {
		le := chunk
		if size >= 0 && size-len(out) < le {
			le = size - len(out)
		}
		if len(out) > MaxOffset {
			return nil, fmt.Errorf("read binary: file larger than %d bytes: %w", MaxOffset, ErrFormat)
		}
		data, eof, err := ReadBinary(ch, len(out), le)
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

// CHVStatus is the answer to VERIFY without data (§3, method 1).
type CHVStatus struct {
	Verified  bool // 90 00: verified since the last reset
	TriesLeft int  // 63 Cx; -1 when Verified or Blocked
	Blocked   bool // 69 83
}

// VerifyStatus sends VERIFY without data (case 1): 00 20 00 ref. The card
// reports the tries left without consuming one (§3).
func VerifyStatus(ch *apdu.Channel, ref byte) (CHVStatus, error) {
	r, err := ch.Do(apdu.Command{CLA: cla, INS: apdu.InsVerify, P1: 0x00, P2: ref, Le: apdu.NoLe})
	if err != nil {
		return CHVStatus{}, fmt.Errorf("verify status %02X: %w", ref, err)
	}
	switch {
	case r.SW == apdu.SWSuccess:
		return CHVStatus{Verified: true, TriesLeft: -1}, nil
	case r.SW == apdu.SWAuthBlocked:
		return CHVStatus{Blocked: true, TriesLeft: -1}, nil
	case r.SW&0xFFF0 == apdu.SWVerificationFailedPrefix:
		return CHVStatus{TriesLeft: int(r.SW & 0x0F)}, nil
	}
	return CHVStatus{}, fmt.Errorf("verify status %02X: %w", ref, r.Err())
}

// Verify presents a PIN or PUK: 00 20 00 ref Lc data (§3). The error is the
// card's *apdu.StatusError (63 Cx, 69 83, ...). data is never logged.
func Verify(ch *apdu.Channel, ref byte, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("verify %02X: %w: empty reference data", ref, ErrFormat)
	}
	if _, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsVerify, P1: 0x00, P2: ref, Data: data, Le: apdu.NoLe}); err != nil {
		return fmt.Errorf("verify %02X: %w", ref, err)
	}
	return nil
}

// ChangeReferenceData replaces a PIN: 00 24 00 ref Lc old‖new. IAS-ECC
// requires the old PIN to be VERIFYed first (§3, OpenSC).
func ChangeReferenceData(ch *apdu.Channel, ref byte, oldPIN, newPIN []byte) error {
	data := make([]byte, 0, len(oldPIN)+len(newPIN))
	data = append(append(data, oldPIN...), newPIN...)
	defer clear(data)
	if _, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsChangeReferenceData, P1: 0x00, P2: ref, Data: data, Le: apdu.NoLe}); err != nil {
		return fmt.Errorf("change reference data %02X: %w", ref, err)
	}
	return nil
}

// ResetRetryCounter unblocks a PIN: 00 2C p1 ref [Lc data]. P1=02 carries
// the new PIN (the PUK having been VERIFYed before), P1=03 resets only
// (§3, OpenSC iasecc_pin_reset).
func ResetRetryCounter(ch *apdu.Channel, p1, ref byte, data []byte) error {
	if _, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsResetRetryCounter, P1: p1, P2: ref, Data: data, Le: apdu.NoLe}); err != nil {
		return fmt.Errorf("reset retry counter %02X: %w", ref, err)
	}
	return nil
}

// MSE SET control reference templates (§4, P1=41 "set for computation").
const (
	CRTAT  byte = 0xA4 // authentication (INTERNAL AUTHENTICATE)
	CRTHT  byte = 0xAA // hash
	CRTCT  byte = 0xB8 // confidentiality (decipher)
	CRTDST byte = 0xB6 // digital signature
)

func mse(ch *apdu.Channel, crt byte, data []byte) error {
	if _, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsManageSecurityEnv, P1: 0x41, P2: crt, Data: data, Le: apdu.NoLe}); err != nil {
		return fmt.Errorf("mse set %02X: %w", crt, err)
	}
	return nil
}

// MSESetAT: 00 22 41 A4 06 84 01 key 80 01 alg (§4.1, OpenSC order).
func MSESetAT(ch *apdu.Channel, key, alg byte) error {
	return mse(ch, CRTAT, []byte{0x84, 0x01, key, 0x80, 0x01, alg})
}

// MSESetHT: 00 22 41 AA 03 80 01 alg (§4.2 step 1).
func MSESetHT(ch *apdu.Channel, alg byte) error {
	return mse(ch, CRTHT, []byte{0x80, 0x01, alg})
}

// MSESetDST: 00 22 41 B6 06 84 01 key 80 01 alg (§4.2 step 2).
func MSESetDST(ch *apdu.Channel, key, alg byte) error {
	return mse(ch, CRTDST, []byte{0x84, 0x01, key, 0x80, 0x01, alg})
}

// MSESetCT: 00 22 41 B8 06 84 01 key 80 01 alg (§4.3).
func MSESetCT(ch *apdu.Channel, key, alg byte) error {
	return mse(ch, CRTCT, []byte{0x84, 0x01, key, 0x80, 0x01, alg})
}

// PSOHashData builds the PSO HASH data field (§4.2 step 3):
// 90 28 <state 32> <bit count 8> 80 n <tail>, or 90 00 80 n <tail> when
// nothing was hashed on the host.
func PSOHashData(s SHA256Split) []byte {
	b := make([]byte, 0, 2+40+2+len(s.Tail))
	if s.Prehashed() {
		b = append(b, 0x90, 32+8)
		b = append(b, s.State[:]...)
		b = binary.BigEndian.AppendUint64(b, s.Bits)
	} else {
		b = append(b, 0x90, 0x00)
	}
	b = append(b, 0x80, byte(len(s.Tail)))
	return append(b, s.Tail...)
}

// PSOHash sends the host part of the hash: 00 2A 90 A0 Lc data (§4.2).
func PSOHash(ch *apdu.Channel, s SHA256Split) error {
	if len(s.Tail) > sha256BlockSize {
		return fmt.Errorf("pso hash: %w: tail of %d bytes", ErrFormat, len(s.Tail))
	}
	if _, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsPerformSecurityOp, P1: 0x90, P2: 0xA0, Data: PSOHashData(s), Le: apdu.NoLe}); err != nil {
		return fmt.Errorf("pso hash: %w", err)
	}
	return nil
}

// PSOComputeDigitalSignature: 00 2A 9E 9A 00 (case 2, Le=256, §4.2 step 4).
// Over T=0 the signature comes as 61 00 + GET RESPONSE.
func PSOComputeDigitalSignature(ch *apdu.Channel) ([]byte, error) {
	sig, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsPerformSecurityOp, P1: 0x9E, P2: 0x9A, Le: apdu.MaxShortLe})
	if err != nil {
		return nil, fmt.Errorf("pso compute digital signature: %w", err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("pso compute digital signature: %w: empty signature", ErrFormat)
	}
	return sig, nil
}

// PSOComputeDigitalSignatureOfHash: 00 2A 9E 9A Lc hash 00 — the complete
// hash as data, after MSE SET DST (the Cryptolib's CKM_RSA_PKCS path, §4.2;
// not seen in a real-card trace).
func PSOComputeDigitalSignatureOfHash(ch *apdu.Channel, hash []byte) ([]byte, error) {
	if len(hash) != 20 && len(hash) != 32 {
		return nil, fmt.Errorf("pso compute digital signature: %w: hash of %d bytes", ErrFormat, len(hash))
	}
	sig, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsPerformSecurityOp, P1: 0x9E, P2: 0x9A, Data: hash, Le: apdu.MaxShortLe})
	if err != nil {
		return nil, fmt.Errorf("pso compute digital signature (hash as data): %w", err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("pso compute digital signature: %w: empty signature", ErrFormat)
	}
	return sig, nil
}

// InternalAuthenticate: 00 88 00 00 Lc data 00 (§4.1). The card applies
// PKCS#1 v1.5 type 1 padding to data and signs with the key set by MSE AT.
func InternalAuthenticate(ch *apdu.Channel, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data) > apdu.MaxShortData {
		return nil, fmt.Errorf("internal authenticate: %w: %d bytes", ErrFormat, len(data))
	}
	sig, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsInternalAuthenticate, P1: 0x00, P2: 0x00, Data: data, Le: apdu.MaxShortLe})
	if err != nil {
		return nil, fmt.Errorf("internal authenticate: %w", err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("internal authenticate: %w: empty signature", ErrFormat)
	}
	return sig, nil
}

// GetCHVDOCP reads the public data of CHV SDO ref with the MF current (§3,
// method 2): 00 CB 3F FF 0A 4D 08 70 06 BF 81 ref 02 A0 80. In an application
// DF the card answers 6A 88.
func GetCHVDOCP(ch *apdu.Channel, ref byte) (*CHVDOCP, error) {
	data := []byte{0x4D, 0x08, 0x70, 0x06, 0xBF, 0x81, ref, 0x02, 0xA0, 0x80}
	resp, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsGetData, P1: 0x3F, P2: 0xFF, Data: data, Le: apdu.NoLe})
	if err != nil {
		return nil, fmt.Errorf("get data CHV %02X: %w", ref, err)
	}
	d, err := ParseCHVDOCP(resp)
	if err != nil {
		return nil, fmt.Errorf("get data CHV %02X: %w", ref, err)
	}
	if d.Ref != ref {
		return nil, fmt.Errorf("get data CHV %02X: %w: answer names CHV %02X", ref, ErrFormat, d.Ref)
	}
	return d, nil
}

// IsNotFound reports 6A 82 (file or application not found).
func IsNotFound(err error) bool { return errors.Is(err, apdu.ErrFileNotFound) }
