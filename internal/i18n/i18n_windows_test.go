package i18n

import "testing"

func TestFromLANGID(t *testing.T) {
	for id, want := range map[uint16]Lang{0x040C: FR, 0x0C0C: FR, 0x100C: FR, 0x0409: EN, 0x0407: EN, 0x0000: FR} {
		if got := fromLANGID(id); got != want {
			t.Errorf("fromLANGID(%#04x) = %q, want %q", id, got, want)
		}
	}
}
