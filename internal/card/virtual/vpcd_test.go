package virtual

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// driver plays the vpcd side: it writes header and payload with two writes,
// like Debian's ifd-vpcd.
type driver struct {
	t    *testing.T
	conn net.Conn
}

func (d *driver) send(payload []byte) {
	d.t.Helper()
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(payload)))
	if _, err := d.conn.Write(hdr[:]); err != nil {
		d.t.Fatalf("write header: %v", err)
	}
	if _, err := d.conn.Write(payload); err != nil {
		d.t.Fatalf("write payload: %v", err)
	}
}

func (d *driver) recv() []byte {
	d.t.Helper()
	_ = d.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(d.conn, hdr[:]); err != nil {
		d.t.Fatalf("read header: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(d.conn, b); err != nil {
		d.t.Fatalf("read payload: %v", err)
	}
	return b
}

func TestVPCDFraming(t *testing.T) {
	card := newTestCard(t)
	cardSide, drvSide := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveStream(context.Background(), cardSide, card, nil) }()
	d := &driver{t: t, conn: drvSide}

	d.send([]byte{vpcdGetATR})
	if got := d.recv(); !bytes.Equal(got, cps.ATRCPS3Contact) {
		t.Errorf("ATR %s", apdu.Hex(got))
	}
	// Power on and reset get no answer: the next frame read answers the APDU.
	d.send([]byte{vpcdPowerOn})
	d.send([]byte{vpcdReset})
	d.send(h(t, "00 A4 09 04 04 3F 00 D0 03"))
	if got := d.recv(); !bytes.Equal(got, []byte{0x61, 0x27}) {
		t.Errorf("SELECT answer %s", apdu.Hex(got))
	}
	d.send(h(t, "00 C0 00 00 27"))
	if got := d.recv(); len(got) != 0x29 {
		t.Errorf("GET RESPONSE answer of %d bytes", len(got))
	}
	d.send([]byte{0x99}) // unknown control code: ignored
	d.send([]byte{vpcdPowerOff})
	d.send(h(t, "00 A4 00 0C 02 3F 00"))
	if got := d.recv(); !bytes.Equal(got, []byte{0x6F, 0x00}) {
		t.Errorf("APDU while powered off: %s", apdu.Hex(got))
	}
	d.send([]byte{vpcdPowerOn})
	d.send(h(t, "00 20 00 01"))
	if got := d.recv(); !bytes.Equal(got, []byte{0x63, 0xC3}) {
		t.Errorf("VERIFY status %s", apdu.Hex(got))
	}
	_ = drvSide.Close()
	if err := <-done; !errors.Is(err, ErrVPCDClosed) {
		t.Errorf("serveStream: %v", err)
	}
	if st := card.Stats(); st.Resets != 1 || st.PowerOns != 1 {
		t.Errorf("stats %+v", st)
	}
}

// pipeDialer hands the driver side of each dialed connection to the test.
func pipeDialer(conns chan<- net.Conn) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		a, b := net.Pipe()
		select {
		case conns <- b:
			return a, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func TestVPCDClientDropRemoveInsert(t *testing.T) {
	card := newTestCard(t)
	conns := make(chan net.Conn)
	events := make(chan VPCDEvent, 16)
	var n atomic.Int32
	v := &VPCDClient{
		Addr: "pipe", Card: card, Redial: true, MinBackoff: time.Millisecond,
		Dial:    pipeDialer(conns),
		OnEvent: func(e VPCDEvent) { events <- e },
		BeforeAPDU: func(cmd []byte) Action {
			switch n.Add(1) {
			case 2:
				return Drop // pull the card at the second APDU
			case 3:
				return Delay(5 * time.Millisecond)
			}
			return Continue
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	d := &driver{t: t, conn: <-conns}
	if e := <-events; !e.Connected {
		t.Fatalf("event %+v", e)
	}
	d.send([]byte{vpcdPowerOn})
	d.send(h(t, "00 A4 00 0C 02 3F 00"))
	if got := d.recv(); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Errorf("first APDU %s", apdu.Hex(got))
	}
	d.send(h(t, "00 A4 00 0C 02 3F 00"))
	if _, err := io.ReadFull(d.conn, make([]byte, 1)); err == nil {
		t.Error("connection still open after Drop")
	}
	if e := <-events; e.Connected || !errors.Is(e.Err, ErrCardPulled) {
		t.Fatalf("event after drop %+v", e)
	}
	if v.Connected() {
		t.Error("still connected")
	}
	// Pulled: no redial until Insert.
	select {
	case <-conns:
		t.Fatal("redialed a pulled card")
	case <-time.After(20 * time.Millisecond):
	}
	v.Insert()
	d = &driver{t: t, conn: <-conns}
	<-events
	d.send([]byte{vpcdPowerOn})
	d.send(h(t, "00 20 00 01")) // delayed APDU
	if got := d.recv(); !bytes.Equal(got, []byte{0x63, 0xC3}) {
		t.Errorf("delayed APDU %s", apdu.Hex(got))
	}
	v.Remove()
	if e := <-events; !errors.Is(e.Err, ErrCardPulled) {
		t.Errorf("event after Remove %+v", e)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func TestServeVPCDOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	card := newTestCard(t)

	// Without redial: the driver closing the socket ends ServeVPCD.
	done := make(chan error, 1)
	go func() { done <- ServeVPCD(context.Background(), ln.Addr().String(), card) }()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, conn: conn}
	d.send([]byte{vpcdGetATR})
	if got := d.recv(); !bytes.Equal(got, cps.ATRCPS3Contact) {
		t.Errorf("ATR %s", apdu.Hex(got))
	}
	_ = conn.Close()
	if err := <-done; !errors.Is(err, ErrVPCDClosed) {
		t.Errorf("ServeVPCD: %v", err)
	}

	// With redial: a pcscd restart (socket closed) is followed by a new dial;
	// cancelling the context removes the card and returns nil.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- ServeVPCD(ctx, ln.Addr().String(), card, WithRedial(), WithLogf(t.Logf)) }()
	conn, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	conn, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	d = &driver{t: t, conn: conn}
	d.send([]byte{vpcdPowerOn})
	d.send(h(t, "00 20 00 01"))
	if got := d.recv(); !bytes.Equal(got, []byte{0x63, 0xC3}) {
		t.Errorf("after redial %s", apdu.Hex(got))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("cancel: %v", err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err == nil {
		t.Error("socket still open after cancel")
	}
	_ = conn.Close()

	// Nothing listening: ErrVPCDDial without redial.
	addr := ln.Addr().String()
	_ = ln.Close()
	if err := ServeVPCD(context.Background(), addr, card); !errors.Is(err, ErrVPCDDial) {
		t.Errorf("dial error: %v", err)
	}
	// With redial, a cancelled context stops the retries.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ServeVPCD(ctx, addr, card, WithRedial()); err != nil {
		t.Errorf("redial loop: %v", err)
	}
}

func TestSlotName(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:35963": "Virtual PCD 00 00",
		"127.0.0.1:35964": "Virtual PCD 00 01",
		"localhost:80":    "",
		"nonsense":        "",
	} {
		if got := SlotName(addr); got != want {
			t.Errorf("SlotName(%q) = %q, want %q", addr, got, want)
		}
	}
}
