package virtual

import (
	"encoding/binary"
	"math/bits"
)

// The card finishes hashes that the host started (PSO HASH, card-cpx.md
// §4.2): it receives the chaining value after the complete 64-byte blocks,
// the bit count hashed so far and the last 1..64 bytes. crypto/sha256 cannot
// resume from a chaining value through a documented API, so the two
// compression functions are written out here (FIPS 180-4) and checked against
// the standard library in the tests.

const hashBlock = 64

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

// sha256Blocks runs the SHA-256 compression function over whole blocks.
func sha256Blocks(h *[8]uint32, p []byte) {
	var w [64]uint32
	for len(p) >= hashBlock {
		for i := 0; i < 16; i++ {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		for i := 16; i < 64; i++ {
			s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
			s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
			w[i] = w[i-16] + s0 + w[i-7] + s1
		}
		a, b, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
		for i := 0; i < 64; i++ {
			s1 := bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)
			ch := (e & f) ^ (^e & g)
			t1 := hh + s1 + ch + sha256K[i] + w[i]
			s0 := bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)
			maj := (a & b) ^ (a & c) ^ (b & c)
			t2 := s0 + maj
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
		p = p[hashBlock:]
	}
}

var sha1IV = [5]uint32{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}

// sha1Blocks runs the SHA-1 compression function over whole blocks.
func sha1Blocks(h *[5]uint32, p []byte) {
	var w [80]uint32
	for len(p) >= hashBlock {
		for i := 0; i < 16; i++ {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		for i := 16; i < 80; i++ {
			w[i] = bits.RotateLeft32(w[i-3]^w[i-8]^w[i-14]^w[i-16], 1)
		}
		a, b, c, d, e := h[0], h[1], h[2], h[3], h[4]
		for i := 0; i < 80; i++ {
			var f, k uint32
			switch {
			case i < 20:
				f, k = (b&c)|(^b&d), 0x5A827999
			case i < 40:
				f, k = b^c^d, 0x6ED9EBA1
			case i < 60:
				f, k = (b&c)|(b&d)|(c&d), 0x8F1BBCDC
			default:
				f, k = b^c^d, 0xCA62C1D6
			}
			t := bits.RotateLeft32(a, 5) + f + e + k + w[i]
			e, d, c, b, a = d, c, bits.RotateLeft32(b, 30), a, t
		}
		h[0] += a
		h[1] += b
		h[2] += c
		h[3] += d
		h[4] += e
		p = p[hashBlock:]
	}
}

// padTail returns tail followed by the Merkle–Damgård padding for a message
// of totalBits bits: one or two whole blocks.
func padTail(tail []byte, totalBits uint64) []byte {
	n := len(tail) + 1 + 8
	n = (n + hashBlock - 1) / hashBlock * hashBlock
	buf := make([]byte, n)
	copy(buf, tail)
	buf[len(tail)] = 0x80
	binary.BigEndian.PutUint64(buf[n-8:], totalBits)
	return buf
}

// hashAlg identifies a hash by its IAS-ECC HT algorithm reference.
type hashAlg byte

const (
	hashSHA1   = hashAlg(0x10)
	hashSHA256 = hashAlg(0x40)
)

func (a hashAlg) size() int {
	if a == hashSHA1 {
		return 20
	}
	return 32
}

// finishHash completes a hash from a chaining value (big-endian words, nil
// for the initial value), the number of bits already hashed (a multiple of
// 512) and the remaining bytes. ok is false for a malformed state.
func finishHash(alg hashAlg, state []byte, bitCount uint64, tail []byte) (digest []byte, ok bool) {
	if bitCount%(hashBlock*8) != 0 {
		return nil, false
	}
	total := bitCount + uint64(len(tail))*8
	if total < bitCount { // overflow
		return nil, false
	}
	// Whole blocks in the tail are absorbed first, then the padded rest.
	whole := len(tail) / hashBlock * hashBlock
	switch alg {
	case hashSHA256:
		h := sha256IV
		if state != nil {
			if len(state) != 32 {
				return nil, false
			}
			for i := range h {
				h[i] = binary.BigEndian.Uint32(state[4*i:])
			}
		}
		sha256Blocks(&h, tail[:whole])
		sha256Blocks(&h, padTail(tail[whole:], total))
		out := make([]byte, 32)
		for i, v := range h {
			binary.BigEndian.PutUint32(out[4*i:], v)
		}
		return out, true
	case hashSHA1:
		h := sha1IV
		if state != nil {
			if len(state) != 20 {
				return nil, false
			}
			for i := range h {
				h[i] = binary.BigEndian.Uint32(state[4*i:])
			}
		}
		sha1Blocks(&h, tail[:whole])
		sha1Blocks(&h, padTail(tail[whole:], total))
		out := make([]byte, 20)
		for i, v := range h {
			binary.BigEndian.PutUint32(out[4*i:], v)
		}
		return out, true
	}
	return nil, false
}

// midState hashes the complete blocks of msg except the last 1..64 bytes
// (the Cryptolib split, card-cpx.md §4.2) and returns what a host sends in
// PSO HASH: chaining value, bit count and tail. A message of up to 64 bytes
// gives a nil state (sent as "90 00").
func midState(alg hashAlg, msg []byte) (state []byte, bitCount uint64, tail []byte) {
	if len(msg) <= hashBlock {
		return nil, 0, msg
	}
	pre := (len(msg) - 1) / hashBlock * hashBlock
	switch alg {
	case hashSHA1:
		h := sha1IV
		sha1Blocks(&h, msg[:pre])
		state = make([]byte, 20)
		for i, v := range h {
			binary.BigEndian.PutUint32(state[4*i:], v)
		}
	default:
		h := sha256IV
		sha256Blocks(&h, msg[:pre])
		state = make([]byte, 32)
		for i, v := range h {
			binary.BigEndian.PutUint32(state[4*i:], v)
		}
	}
	return state, uint64(pre) * 8, msg[pre:]
}
