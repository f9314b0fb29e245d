package virtual

import (
	"fmt"
	"sort"
	"time"
)

// Latency models the time a real card and reader take. Each APDU costs
// PerAPDU plus PerByte for every command and response byte, plus RSA for
// each private-key operation. The zero value is an instant card.
type Latency struct {
	PerAPDU time.Duration `json:"perApdu,omitempty"`
	PerByte time.Duration `json:"perByte,omitempty"`
	RSA     time.Duration `json:"rsa,omitempty"`
}

func (l Latency) cost(in, out int, rsaOps int64) time.Duration {
	return l.PerAPDU + time.Duration(in+out)*l.PerByte + time.Duration(rsaOps)*l.RSA
}

// Latency presets:
//
//   - "instant": no delay (default).
//   - "cps3": a CPS3 on a USB CCID reader. The ATR has no TA1, so the card
//     runs at the default Fi/Di = 372/1: 9 600 bit/s at 3.57 MHz, and a T=0
//     character takes 12 etu, about 1.25 ms per byte. 20 ms per exchange
//     covers the CCID round trip, the procedure bytes and the card's command
//     processing (EEPROM file system). An RSA-2048 private-key operation on
//     a 2010-era IAS-ECC chip takes 250-500 ms; 300 ms is used.
//   - "cps3-trace": the timing of the only public real-card trace (vendor
//     PKCS#11 driver, OSC#2275): about 100 ms per exchange, 0.6 ms per byte,
//     and the same 300 ms per RSA operation.
var latencyPresets = map[string]Latency{
	"instant":    {},
	"cps3":       {PerAPDU: 20 * time.Millisecond, PerByte: 1250 * time.Microsecond, RSA: 300 * time.Millisecond},
	"cps3-trace": {PerAPDU: 100 * time.Millisecond, PerByte: 600 * time.Microsecond, RSA: 300 * time.Millisecond},
}

// LatencyPreset returns a named latency model ("instant", "cps3",
// "cps3-trace").
func LatencyPreset(name string) (Latency, error) {
	l, ok := latencyPresets[name]
	if !ok {
		return Latency{}, fmt.Errorf("%w: unknown latency preset %q (have %v)", ErrConfig, name, LatencyPresets())
	}
	return l, nil
}

// LatencyPresets lists the preset names.
func LatencyPresets() []string {
	names := make([]string, 0, len(latencyPresets))
	for n := range latencyPresets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
