package iasecc

import (
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ChangeReferenceDataNewOnly replaces a PIN with P1=01: 00 24 01 ref Lc new
// (ISO 7816-4: the data field holds the new value only, the current one
// having been verified just before). card-cpx.md §3, §8 item 5: whether a
// CPS3 wants P1 00 (old‖new, OpenSC) or 01 is not confirmed; the CPS4
// Cryptolib uses 01.
func ChangeReferenceDataNewOnly(ch *apdu.Channel, ref byte, newPIN []byte) error {
	if len(newPIN) == 0 {
		return fmt.Errorf("change reference data %02X: %w: empty new value", ref, ErrFormat)
	}
	if _, err := ch.Send(apdu.Command{CLA: cla, INS: apdu.InsChangeReferenceData, P1: 0x01, P2: ref, Data: newPIN, Le: apdu.NoLe}); err != nil {
		return fmt.Errorf("change reference data %02X: %w", ref, err)
	}
	return nil
}
