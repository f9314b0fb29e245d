//go:build !unix

package pcsctest

import "testing"

// StopPCSCD is only implemented where pcscd runs (Unix).
func StopPCSCD(t testing.TB) { t.Skip("pcscd restart is only implemented on Unix") }

// StartPCSCD is only implemented where pcscd runs (Unix).
func StartPCSCD(t testing.TB, logPath string) { t.Skip("pcscd restart is only implemented on Unix") }

func lockFile(t testing.TB, name string, exclusive bool) {}
