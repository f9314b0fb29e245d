package pcsc

import (
	"context"
	"fmt"
	"time"

	"github.com/ebfe/scard"
)

// Ways to clear the verified state compared by TestResetCost.
const (
	ClearEndTransactionReset = "EndTransaction(ResetCard)"
	ClearReconnectReset      = "Reconnect(ResetCard)"
	ClearLogoutAPDU          = "SELECT root AID (logout)"
	ClearNone                = "EndTransaction(LeaveCard)"
)

func ClearMethods() []string {
	return []string{ClearEndTransactionReset, ClearReconnectReset, ClearLogoutAPDU, ClearNone}
}

// MeasureClear VERIFYs pin, clears the verified state with method (timed)
// and reports whether VERIFY without data then says "not verified".
func MeasureClear(ctx context.Context, t *Transport, reader, method string, pin []byte) (d time.Duration, apdus int, cleared bool, err error) {
	sess, err := t.Begin(ctx, reader)
	if err != nil {
		return 0, 0, false, err
	}
	s := sess.(*session)
	verify := append([]byte{0x00, 0x20, 0x00, 0x01, byte(len(pin))}, pin...)
	if r, err := s.Transmit(verify); err != nil || fmt.Sprintf("% X", r) != "90 00" {
		_ = s.End(true)
		return 0, 0, false, fmt.Errorf("VERIFY = % X, %v", r, err)
	}
	start := time.Now()
	switch method {
	case ClearEndTransactionReset:
		err = s.End(true)
		d = time.Since(start)
	case ClearReconnectReset:
		err = s.c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.ResetCard)
		d = time.Since(start)
		if err == nil {
			err = s.End(false)
		}
	case ClearLogoutAPDU:
		_, err = s.Transmit([]byte{0x00, 0xA4, 0x04, 0x0C, 0x08, 0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x01, 0x00})
		d, apdus = time.Since(start), 1
		if e := s.End(false); err == nil {
			err = e
		}
	default:
		err = s.End(false)
		d = time.Since(start)
	}
	if err != nil {
		return 0, 0, false, err
	}
	sess, err = t.Begin(ctx, reader)
	if err != nil {
		return 0, 0, false, err
	}
	r, err := sess.Transmit([]byte{0x00, 0x20, 0x00, 0x01})
	_ = sess.End(true) // leave the card clean whatever the method did
	if err != nil {
		return 0, 0, false, err
	}
	return d, apdus, fmt.Sprintf("% X", r) != "90 00", nil
}
