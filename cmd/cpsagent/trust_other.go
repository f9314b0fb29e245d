//go:build !windows

package main

// trustDeferredByInstaller: only the Windows installer defers the trust to
// the agent's first start (CPSAGENT_NOTRUST=1). The Linux packages run
// "cpsagent install --trust-only" before each start (the unit's
// ExecStartPre) and the macOS package in its postinstall.
func trustDeferredByInstaller() bool { return false }
