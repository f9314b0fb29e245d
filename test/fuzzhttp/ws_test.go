package fuzzhttp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// frameSpec describes one client frame, possibly invalid.
type frameSpec struct {
	fin      bool
	rsv      byte // the three RSV bits, as 0..7
	op       byte
	unmasked bool   // clients must mask (a protocol error otherwise)
	length   uint64 // declared length; 0 means len(payload)
	payload  []byte
}

// wsFrame encodes a client frame.
func wsFrame(f frameSpec) []byte {
	b0 := f.op&0x0F | (f.rsv&0x7)<<4
	if f.fin {
		b0 |= 0x80
	}
	n := f.length
	if n == 0 {
		n = uint64(len(f.payload))
	}
	out := []byte{b0}
	mask := byte(0x80)
	if f.unmasked {
		mask = 0
	}
	switch {
	case n < 126:
		out = append(out, mask|byte(n))
	case n <= 0xFFFF:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	p := append([]byte(nil), f.payload...)
	if !f.unmasked {
		key := []byte{0x37, 0xfa, 0x21, 0x3d}
		out = append(out, key...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(out, p...)
}

func frames(fs ...frameSpec) []byte {
	var out []byte
	for _, f := range fs {
		out = append(out, wsFrame(f)...)
	}
	return out
}

func text(s string) frameSpec { return frameSpec{fin: true, op: opText, payload: []byte(s)} }

func closeFrame(code uint16, reason string) frameSpec {
	p := binary.BigEndian.AppendUint16(nil, code)
	return frameSpec{fin: true, op: opClose, payload: append(p, reason...)}
}

// serverFrame is one frame the agent sent.
type serverFrame struct {
	op      byte
	payload []byte
}

// wsResult is what happened on one event stream.
type wsResult struct {
	frames    []serverFrame
	closeCode int  // the agent's close frame code (0: none)
	closed    bool // the agent closed the TCP connection or sent a close frame
}

// wsExchange opens /v1/events with a real handshake, reads the hello
// message, writes raw (client frames, possibly malformed) and reads what
// the agent sends until it closes or stays silent for quiet.
func (tg *target) wsExchange(raw []byte, quiet time.Duration) (*wsResult, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(&d, "tcp", tg.addr, tg.tls)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	keyRaw := make([]byte, 16)
	_, _ = rand.Read(keyRaw)
	key := base64.StdEncoding.EncodeToString(keyRaw)
	req := "GET /v1/events HTTP/1.1\r\nHost: " + tg.addr + "\r\nOrigin: " + tg.origin +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		return nil, errors.New("handshake: wrong Sec-WebSocket-Accept")
	}
	res := &wsResult{}
	hello, err := readFrame(br)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if err := checkServerFrame(hello); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	var m struct{ Type string }
	if json.Unmarshal(hello.payload, &m) != nil || m.Type != "hello" {
		return nil, fmt.Errorf("first message %q is not the hello", hello.payload)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(raw); err != nil && !isClosed(err) {
		return nil, err
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(quiet))
		f, err := readFrame(br)
		if err != nil {
			if isClosed(err) || errors.Is(err, io.ErrUnexpectedEOF) {
				res.closed = true
				return res, nil
			}
			if isTimeout(err) {
				return res, nil
			}
			return res, fmt.Errorf("unreadable frame from the agent: %w", err)
		}
		if err := checkServerFrame(f); err != nil {
			// The library echoes a client's close reason as it came.
			if !(f.op == opClose && len(f.payload) > 2 && echoedReason(raw, f.payload[2:])) {
				return res, err
			}
		}
		res.frames = append(res.frames, f)
		if f.op == opClose {
			res.closed = true
			if len(f.payload) >= 2 {
				res.closeCode = int(binary.BigEndian.Uint16(f.payload))
			}
			return res, nil
		}
		if len(res.frames) > 100 {
			return res, errors.New("the agent keeps sending frames")
		}
	}
}

// readFrame reads one server frame (unmasked, at most 64 KiB here).
func readFrame(br *bufio.Reader) (serverFrame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return serverFrame{}, err
	}
	if hdr[0]&0x80 == 0 || hdr[0]&0x70 != 0 {
		return serverFrame{}, fmt.Errorf("agent frame with FIN clear or RSV bits: %#x", hdr[0])
	}
	if hdr[1]&0x80 != 0 {
		return serverFrame{}, errors.New("agent frame masked (servers must not mask)")
	}
	n := uint64(hdr[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<10 {
		return serverFrame{}, fmt.Errorf("agent frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{op: hdr[0] & 0x0F, payload: p}, nil
}

// validWireCloseCode: the close codes an endpoint may send (RFC 6455
// §7.4.1-2 and the IANA "WebSocket Close Code Number Registry", which
// added 1012 Service Restart, 1013 Try Again Later and 1014 Bad Gateway):
// 1004, 1005, 1006 and 1015 are reserved for local use, 1016-2999 are
// unassigned, 3000-4999 belong to libraries and applications.
func validWireCloseCode(c int) bool {
	return c >= 1000 && c <= 1003 || c >= 1007 && c <= 1014 || c >= 3000 && c <= 4999
}

// checkServerFrame: text frames are JSON objects, close frames carry a
// code that may be sent on the wire and a UTF-8 reason.
func checkServerFrame(f serverFrame) error {
	switch f.op {
	case opText:
		if !utf8.Valid(f.payload) || !json.Valid(f.payload) {
			return fmt.Errorf("agent text frame is not JSON: %.200q", f.payload)
		}
	case opClose:
		if len(f.payload) == 1 || len(f.payload) > 125 {
			return fmt.Errorf("agent close frame of %d bytes", len(f.payload))
		}
		if len(f.payload) >= 2 {
			c := int(binary.BigEndian.Uint16(f.payload))
			if !validWireCloseCode(c) {
				return fmt.Errorf("agent close code %d cannot be sent on the wire", c)
			}
			if !utf8.Valid(f.payload[2:]) {
				return errors.New("agent close reason is not UTF-8")
			}
		}
	case opPing, opPong:
		if len(f.payload) > 125 {
			return errors.New("agent control frame too long")
		}
	default:
		return fmt.Errorf("agent frame with opcode %#x", f.op)
	}
	return nil
}

// echoedReason reports whether reason is the reason of a close frame among
// the client's frames (unmasked), i.e. the agent's library echoed it.
func echoedReason(raw, reason []byte) bool {
	for len(raw) >= 2 {
		op, masked, n := raw[0]&0x0F, raw[1]&0x80 != 0, uint64(raw[1]&0x7F)
		raw = raw[2:]
		switch n {
		case 126:
			if len(raw) < 2 {
				return false
			}
			n, raw = uint64(binary.BigEndian.Uint16(raw)), raw[2:]
		case 127:
			if len(raw) < 8 {
				return false
			}
			n, raw = binary.BigEndian.Uint64(raw), raw[8:]
		}
		var key []byte
		if masked {
			if len(raw) < 4 {
				return false
			}
			key, raw = raw[:4], raw[4:]
		}
		if uint64(len(raw)) < n {
			return false
		}
		p := append([]byte(nil), raw[:n]...)
		raw = raw[n:]
		for i := range p {
			if key != nil {
				p[i] ^= key[i%4]
			}
		}
		if op == opClose && len(p) > 2 && bytes.Equal(p[2:], reason) {
			return true
		}
	}
	return false
}
