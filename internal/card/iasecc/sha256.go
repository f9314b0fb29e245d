package iasecc

import (
	"encoding/binary"
	"math/bits"
)

// The IAS-ECC "last block on card" rule (card-cpx.md §4.2): the host hashes
// every complete 64-byte block except the last 1..64 bytes of the message and
// sends the SHA-256 chaining value, the number of bits already hashed and the
// tail; the card absorbs the tail and finishes the hash.
//
// The chaining value is computed with the small block function below rather
// than taken from crypto/sha256's MarshalBinary: that encoding is documented
// only as something UnmarshalBinary accepts back, and its layout is internal
// to the Go release. The tests check this code against crypto/sha256 (and, as
// a second oracle, against the MarshalBinary layout of the running release).

// SHA256Split is the PSO HASH input for one message.
type SHA256Split struct {
	// State is the chaining value after the first Bits/8 bytes (big-endian
	// words). It is the initial value H0 when nothing was pre-hashed.
	State [32]byte
	// Bits counts the message bits absorbed into State (a multiple of 512).
	Bits uint64
	// Tail is the rest of the message: 1..64 bytes, or empty for an empty
	// message. It aliases the message passed to SplitSHA256.
	Tail []byte
}

// Prehashed reports whether any block was hashed on the host.
func (s SHA256Split) Prehashed() bool { return s.Bits > 0 }

// SplitSHA256 hashes msg up to its last 1..64 bytes (the Cryptolib rule:
// when len(msg) is a multiple of 64 the whole last block is left to the card;
// an empty message gives an empty tail).
func SplitSHA256(msg []byte) SHA256Split {
	n := 0
	if len(msg) > 0 {
		n = (len(msg) - 1) / sha256BlockSize * sha256BlockSize
	}
	h := sha256IV
	sha256Blocks(&h, msg[:n])
	var s SHA256Split
	for i, w := range h {
		binary.BigEndian.PutUint32(s.State[4*i:], w)
	}
	s.Bits = uint64(n) * 8
	s.Tail = msg[n:]
	return s
}

// FinishSHA256 completes a hash from a split, as the card does. It exists
// for the virtual card's tests and for ours.
func FinishSHA256(s SHA256Split) [32]byte {
	var h [8]uint32
	for i := range h {
		h[i] = binary.BigEndian.Uint32(s.State[4*i:])
	}
	total := s.Bits + uint64(len(s.Tail))*8
	// Padding: 0x80, zeros, 64-bit big-endian bit length.
	buf := make([]byte, 0, 2*sha256BlockSize)
	buf = append(buf, s.Tail...)
	full := len(buf) / sha256BlockSize * sha256BlockSize
	sha256Blocks(&h, buf[:full])
	buf = append(buf[:0], s.Tail[full:]...)
	buf = append(buf, 0x80)
	for len(buf)%sha256BlockSize != 56 {
		buf = append(buf, 0)
	}
	buf = binary.BigEndian.AppendUint64(buf, total)
	sha256Blocks(&h, buf)
	var out [32]byte
	for i, w := range h {
		binary.BigEndian.PutUint32(out[4*i:], w)
	}
	return out
}

const sha256BlockSize = 64

var sha256IV = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

var sha256K = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// sha256Blocks is the FIPS 180-4 §6.2.2 compression over whole blocks.
func sha256Blocks(h *[8]uint32, p []byte) {
	var w [64]uint32
	for len(p) >= sha256BlockSize {
		for i := 0; i < 16; i++ {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		for i := 16; i < 64; i++ {
			s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ (w[i-15] >> 3)
			s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ (w[i-2] >> 10)
			w[i] = w[i-16] + s0 + w[i-7] + s1
		}
		a, b, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
		for i := 0; i < 64; i++ {
			S1 := bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)
			ch := (e & f) ^ (^e & g)
			t1 := hh + S1 + ch + sha256K[i] + w[i]
			S0 := bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)
			maj := (a & b) ^ (a & c) ^ (b & c)
			t2 := S0 + maj
			hh, g, f, e, d, c, b, a = g, f, e, d+t1, c, b, a, t1+t2
		}
		h[0] += a
		h[1] += b
		h[2] += c
		h[3] += d
		h[4] += e
		h[5] += f
		h[6] += g
		h[7] += hh
		p = p[sha256BlockSize:]
	}
}
