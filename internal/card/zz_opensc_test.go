package card_test

import (
	"os/exec"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

func TestZZOpenSC(t *testing.T) {
	r := pcscRig(t, rigOptions{noPreRead: true})
	for _, args := range [][]string{
		{"pkcs15-tool", "--reader", r.reader, "--list-certificates"},
		{"pkcs15-tool", "--reader", r.reader, "--read-certificate", "e828bd080f8025000001ff001002"},
		{"pkcs15-tool", "--reader", r.reader, "--read-certificate", "e828bd080f8025000001ff001001"},
		{"pkcs11-tool", "--module", "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "--slot-index", "0", "--list-objects", "--type", "cert"},
	} {
		c := newCard(t, "medecin", virtual.Behaviour{})
		r.insert(c)
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		t.Logf("%v: %d APDUs (%d GET RESPONSE), err %v\n%s", args, c.Stats().APDUs, c.Stats().GetResponses, err, string(out)[:min(300, len(out))])
		r.remove()
	}
}
