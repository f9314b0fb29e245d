package probe

import (
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ErrATR reports an ATR that does not follow ISO/IEC 7816-3.
var ErrATR = errors.New("probe: malformed ATR")

// ATRInfo is a decoded ATR (ISO/IEC 7816-3 §8.2).
type ATRInfo struct {
	// Convention is "direct" (TS 3B) or "inverse" (TS 3F).
	Convention string `json:"convention"`
	// Interface lists the interface bytes present, e.g. "TA1=18".
	Interface []string `json:"interfaceBytes"`
	// Protocols are the T= values offered (TD bytes); T=0 when none.
	Protocols []int `json:"protocols"`
	// Fi and Di come from TA1 (clock rate conversion and baud rate
	// adjustment); 0 when TA1 is absent (default Fi 372, Di 1).
	Fi int `json:"fi,omitempty"`
	Di int `json:"di,omitempty"`
	// Historical holds the historical bytes (spaced hex).
	Historical string `json:"historicalBytes"`
	// TCK is the check byte, present unless only T=0 is offered.
	TCK string `json:"tck,omitempty"`
	// TCKValid says whether the XOR of T0..TCK is 00 (nil without TCK).
	TCKValid *bool `json:"tckValid,omitempty"`
}

// OnlyT0 reports whether T=0 is the only protocol offered.
func (a *ATRInfo) OnlyT0() bool {
	for _, p := range a.Protocols {
		if p != 0 {
			return false
		}
	}
	return true
}

var fiTable = [16]int{372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0}
var diTable = [16]int{0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0}

// DecodeATR decodes an ATR: TS, T0, the interface bytes TAi/TBi/TCi/TDi,
// the historical bytes and TCK. Up to 33 bytes (ISO 7816-3 maximum).
func DecodeATR(atr []byte) (*ATRInfo, error) {
	if len(atr) < 2 || len(atr) > 33 {
		return nil, fmt.Errorf("%w: %d bytes (2..33)", ErrATR, len(atr))
	}
	a := &ATRInfo{Interface: []string{}}
	switch atr[0] {
	case 0x3B:
		a.Convention = "direct"
	case 0x3F:
		a.Convention = "inverse"
	default:
		return nil, fmt.Errorf("%w: TS %02X (want 3B or 3F)", ErrATR, atr[0])
	}
	t0 := atr[1]
	nHist := int(t0 & 0x0F)
	y := t0 >> 4
	i := 2
	needTCK := false
	for level := 1; ; level++ {
		for bit, name := range []string{"TA", "TB", "TC", "TD"} {
			if y&(1<<bit) == 0 {
				continue
			}
			if i >= len(atr) {
				return nil, fmt.Errorf("%w: %s%d missing", ErrATR, name, level)
			}
			v := atr[i]
			i++
			a.Interface = append(a.Interface, fmt.Sprintf("%s%d=%02X", name, level, v))
			if level == 1 && name == "TA" {
				a.Fi, a.Di = fiTable[v>>4], diTable[v&0x0F]
			}
			if name == "TD" {
				t := int(v & 0x0F)
				if !containsInt(a.Protocols, t) {
					a.Protocols = append(a.Protocols, t)
				}
				if t != 0 {
					needTCK = true
				}
			}
		}
		if y&0x08 == 0 {
			break
		}
		td := atr[i-1]
		y = td >> 4
		if level > 8 {
			return nil, fmt.Errorf("%w: too many interface byte levels", ErrATR)
		}
	}
	if len(a.Protocols) == 0 {
		a.Protocols = []int{0}
	}
	if i+nHist > len(atr) {
		return nil, fmt.Errorf("%w: %d historical bytes announced, %d left", ErrATR, nHist, len(atr)-i)
	}
	a.Historical = apdu.Hex(atr[i : i+nHist])
	i += nHist
	switch rest := len(atr) - i; {
	case needTCK && rest == 1:
		a.TCK = fmt.Sprintf("%02X", atr[i])
		x := byte(0)
		for _, b := range atr[1:] {
			x ^= b
		}
		ok := x == 0
		a.TCKValid = &ok
	case needTCK:
		return nil, fmt.Errorf("%w: TCK expected, %d bytes left", ErrATR, rest)
	case rest != 0:
		return nil, fmt.Errorf("%w: %d bytes after the historical bytes", ErrATR, rest)
	}
	return a, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
