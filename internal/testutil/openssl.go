package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// OpenSSLVerifyCMS verifies a detached CMS signature (DER) over content
// with `openssl cms -verify -binary -inform DER -purpose any`, trusting the
// certificates of caPEM (root and intermediates). It returns the command's
// combined output. The test fails when the signature does not verify; it
// skips (fails under CI) when openssl is missing.
func OpenSSLVerifyCMS(t testing.TB, signature, content, caPEM []byte) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if InCI() {
			t.Fatal("openssl is required under CI=true")
		}
		t.Skip("SKIPPED: openssl not installed")
	}
	dir := t.TempDir()
	sig, doc, ca := filepath.Join(dir, "sig.p7s"), filepath.Join(dir, "doc"), filepath.Join(dir, "ca.pem")
	for p, b := range map[string][]byte{sig: signature, doc: content, ca: caPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", doc,
		"-CAfile", ca, "-purpose", "any", "-out", os.DevNull)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl cms -verify failed: %v\n%s", err, out.String())
	}
	return out.String()
}
