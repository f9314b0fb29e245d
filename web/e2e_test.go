package web

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBrowserE2E runs the headless-Chromium end-to-end test (e2e/run.mjs)
// when CPSAGENT_E2E=1. It needs node, web/node_modules (npm ci), chromium,
// certutil, openssl, pcscd and vsmartcard-vpcd; see docs/integration.md.
func TestBrowserE2E(t *testing.T) {
	if os.Getenv("CPSAGENT_E2E") != "1" {
		t.Skip("set CPSAGENT_E2E=1 to run the browser end-to-end test")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core")); err != nil {
		t.Fatal("web/node_modules/playwright-core missing: run 'npm ci' in web/")
	}
	cmd := exec.Command("node", filepath.Join("e2e", "run.mjs"))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("browser e2e failed: %v", err)
	}
}
