package virtual

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

func TestHashContinuationMatchesStdlib(t *testing.T) {
	msg := make([]byte, 300)
	for i := range msg {
		msg[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(msg); n++ {
		m := msg[:n]
		state, count, tail := midState(hashSHA256, m)
		got, ok := finishHash(hashSHA256, state, count, tail)
		want := sha256.Sum256(m)
		if !ok || !bytes.Equal(got, want[:]) {
			t.Fatalf("SHA-256 of %d bytes: %x, want %x", n, got, want)
		}
		state, count, tail = midState(hashSHA1, m)
		got, ok = finishHash(hashSHA1, state, count, tail)
		want1 := sha1.Sum(m)
		if !ok || !bytes.Equal(got, want1[:]) {
			t.Fatalf("SHA-1 of %d bytes: %x, want %x", n, got, want1)
		}
		// Every block-aligned split works, including an empty tail (OpenSC
		// sends 80 00 for a multiple of 64) and several blocks in the tail.
		for pre := 0; pre <= n; pre += hashBlock {
			var st []byte
			if pre > 0 {
				st = chain256(m[:pre])
			}
			got, ok := finishHash(hashSHA256, st, uint64(pre)*8, m[pre:])
			if !ok || !bytes.Equal(got, want[:]) {
				t.Fatalf("SHA-256 of %d bytes split at %d: %x", n, pre, got)
			}
		}
	}
	if _, ok := finishHash(hashSHA256, make([]byte, 32), 7, nil); ok {
		t.Error("bit count not a multiple of 512 accepted")
	}
	if _, ok := finishHash(hashSHA256, make([]byte, 20), 512, nil); ok {
		t.Error("short state accepted")
	}
}

// chain256 returns the chaining value after whole blocks.
func chain256(blocks []byte) []byte {
	hh := sha256IV
	sha256Blocks(&hh, blocks)
	out := make([]byte, 32)
	for i, v := range hh {
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	return out
}

// signViaCard runs MSE/HASH/CDS in the given order and returns the signature.
func signViaCard(t *testing.T, c *Card, msg []byte, order string) []byte {
	t.Helper()
	ht := "00 22 41 AA 03 80 01 40"
	dst := "00 22 41 B6 06 84 01 81 80 01 42"
	if order == "cryptolib" {
		dst = "00 22 41 B6 06 80 01 42 84 01 81" // tags in the other order too
	}
	hash := apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA256, msg), Le: apdu.NoLe}
	steps := []func(){
		func() { wantSW(t, "HT", rawHex(t, c, ht), apdu.SWSuccess) },
		func() { wantSW(t, "DST", rawHex(t, c, dst), apdu.SWSuccess) },
		func() { _, sw := do(t, c, hash); wantSW(t, "HASH", sw, apdu.SWSuccess) },
	}
	if order == "cryptolib" { // HT, HASH, DST
		steps[1], steps[2] = steps[2], steps[1]
	}
	for _, s := range steps {
		s()
	}
	sig, sw := doHex(t, c, "00 2A 9E 9A 00")
	wantSW(t, "CDS", sw, apdu.SWSuccess)
	return sig
}

func TestSignatureBothOrders(t *testing.T) {
	c := newTestCard(t)
	pub := certPub(t, readFile(t, c, cps.FIDAppDF, 0xA002))
	wantSW(t, "VERIFY", verifyPIN(t, c, "1234"), apdu.SWSuccess)
	selectApp(t, c)
	for _, n := range []int{0, 1, 20, 63, 64, 65, 128, 129, 1000} {
		msg := bytes.Repeat([]byte{0x5A}, n)
		digest := sha256.Sum256(msg)
		for _, order := range []string{"opensc", "cryptolib"} {
			sig := signViaCard(t, c, msg, order)
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				t.Errorf("%s order, %d bytes: %v", order, n, err)
			}
		}
	}
	// The hash is consumed by CDS.
	wantSW(t, "second CDS", rawHex(t, c, "00 2A 9E 9A 00"), apdu.SWConditionsNotSatisfied)
	// MSE HT drops a pending hash.
	rawHex(t, c, "00 22 41 AA 03 80 01 40")
	do(t, c, apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA256, []byte("x")), Le: apdu.NoLe})
	rawHex(t, c, "00 22 41 AA 03 80 01 40")
	wantSW(t, "CDS after HT", rawHex(t, c, "00 2A 9E 9A 00"), apdu.SWConditionsNotSatisfied)
	// A SHA-1 hash does not feed a SHA-256 DST.
	rawHex(t, c, "00 22 41 AA 03 80 01 10")
	do(t, c, apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA1, []byte("x")), Le: apdu.NoLe})
	wantSW(t, "CDS alg mismatch", rawHex(t, c, "00 2A 9E 9A 00"), apdu.SWConditionsNotSatisfied)
	// Reset drops everything.
	rawHex(t, c, "00 22 41 AA 03 80 01 40")
	do(t, c, apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA256, []byte("x")), Le: apdu.NoLe})
	c.Reset()
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	rawHex(t, c, "00 22 41 B6 06 84 01 81 80 01 42")
	wantSW(t, "CDS after reset", rawHex(t, c, "00 2A 9E 9A 00"), apdu.SWConditionsNotSatisfied)
	st := c.Stats()
	if st.Signatures != 18 || st.Hashes < 18 {
		t.Errorf("stats %+v", st)
	}
}

func TestSignatureSHA1AndHashAsData(t *testing.T) {
	c := newTestCard(t)
	pub := &c.Config().SignKey.PublicKey
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	msg := []byte("document")
	rawHex(t, c, "00 22 41 AA 03 80 01 10")
	rawHex(t, c, "00 22 41 B6 06 84 01 81 80 01 12")
	do(t, c, apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA1, msg), Le: apdu.NoLe})
	sig, sw := doHex(t, c, "00 2A 9E 9A 00")
	wantSW(t, "CDS SHA-1", sw, apdu.SWSuccess)
	d1 := sha1.Sum(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, d1[:], sig); err != nil {
		t.Error(err)
	}
	// Cryptolib path: DST 42 then CDS with the 32-byte hash as data.
	rawHex(t, c, "00 22 41 B6 06 84 01 81 80 01 42")
	d := sha256.Sum256(msg)
	sig, sw = do(t, c, apdu.Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: d[:], Le: apdu.MaxShortLe})
	wantSW(t, "CDS with hash", sw, apdu.SWSuccess)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		t.Error(err)
	}
	_, sw = do(t, c, apdu.Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: d[:20], Le: apdu.MaxShortLe})
	wantSW(t, "CDS with a short hash", sw, apdu.SWWrongData)

	c2 := newTestCard(t, func(cfg *Config) {
		cfg.Behaviour.RejectHashInCDS = true
		cfg.Behaviour.RejectEmptyHashTail = true
		cfg.Behaviour.SignatureNeedsFreshVerify = true
	})
	verifyPIN(t, c2, "1234")
	selectApp(t, c2)
	rawHex(t, c2, "00 22 41 B6 06 84 01 81 80 01 42")
	_, sw = do(t, c2, apdu.Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: d[:], Le: apdu.MaxShortLe})
	wantSW(t, "hash as data refused", sw, apdu.SWWrongData)
	rawHex(t, c2, "00 22 41 AA 03 80 01 40")
	wantSW(t, "empty tail refused", rawHex(t, c2, "00 2A 90 A0 04 90 00 80 00"), apdu.SWWrongData)
	do(t, c2, apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA256, msg), Le: apdu.NoLe})
	_, sw = doHex(t, c2, "00 2A 9E 9A 00")
	wantSW(t, "first signature", sw, apdu.SWSuccess)
	do(t, c2, apdu.Command{INS: 0x2A, P1: 0x90, P2: 0xA0, Data: hashCommand(hashSHA256, msg), Le: apdu.NoLe})
	wantSW(t, "second signature needs a VERIFY", rawHex(t, c2, "00 2A 9E 9A 00"), apdu.SWSecurityStatus)
}

func TestInternalAuthenticate(t *testing.T) {
	c := newTestCard(t)
	pub := certPub(t, readFile(t, c, cps.FIDAppDF, 0xA001))
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	for _, mse := range []string{"00 22 41 A4 06 84 01 82 80 01 02", "00 22 41 A4 06 80 01 02 84 01 82"} {
		wantSW(t, mse, rawHex(t, c, mse), apdu.SWSuccess)
		for _, n := range []int{1, 20, 36, 51, 102} {
			data := make([]byte, n)
			_, _ = rand.Read(data)
			sig, sw := do(t, c, apdu.Command{INS: 0x88, Data: data, Le: apdu.MaxShortLe})
			wantSW(t, "INTERNAL AUTHENTICATE", sw, apdu.SWSuccess)
			if err := rsa.VerifyPKCS1v15(pub, 0, data, sig); err != nil {
				t.Errorf("%d bytes: %v", n, err)
			}
		}
	}
	// Case 3 form (T=0 OpenSC): 61 00 then GET RESPONSE.
	wantSW(t, "case 3", rawHex(t, c, "00 88 00 00 04 01 02 03 04"), 0x6100)
	if got := c.Stats().InternalAuths; got != 11 {
		t.Errorf("InternalAuths %d", got)
	}
}

func TestDecipherErrors(t *testing.T) {
	c := newTestCard(t)
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	rawHex(t, c, "00 22 41 B8 06 84 01 81 80 01 1A")
	ct, _ := rsaEncryptPKCS1(&c.Config().AuthKey.PublicKey, []byte("k"))
	_, sw := do(t, c, apdu.Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: append([]byte{0x81}, ct...), Le: apdu.MaxShortLe})
	wantSW(t, "decipher with the sign key", sw, apdu.SWConditionsNotSatisfied)
	rawHex(t, c, "00 22 41 B8 06 84 01 82 80 01 1A")
	_, sw = do(t, c, apdu.Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: append([]byte{0x00}, ct...), Le: apdu.MaxShortLe})
	wantSW(t, "no padding indicator", sw, apdu.SWWrongData)
	bad := make([]byte, 256)
	bad[255] = 2
	_, sw = do(t, c, apdu.Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: append([]byte{0x81}, bad...), Le: apdu.MaxShortLe})
	wantSW(t, "bad padding", sw, apdu.SWWrongData)
	wantSW(t, "MSE CT wrong alg", rawHex(t, c, "00 22 41 B8 06 84 01 82 80 01 02"), apdu.SWWrongData)
}

// rsaEncryptPKCS1 pads (type 2) and encrypts, as a host would.
func rsaEncryptPKCS1(pubKey crypto.PublicKey, msg []byte) ([]byte, error) {
	pub, ok := pubKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not RSA")
	}
	k := (pub.N.BitLen() + 7) / 8
	em := make([]byte, k)
	em[1] = 2
	ps := em[2 : k-len(msg)-1]
	for i := range ps {
		for ps[i] == 0 {
			var b [1]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, err
			}
			ps[i] = b[0]
		}
	}
	copy(em[k-len(msg):], msg)
	m := new(big.Int).SetBytes(em)
	c := new(big.Int).Exp(m, big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, k)), nil
}
