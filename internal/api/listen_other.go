//go:build !windows

package api

import "syscall"

// listenControl: on Unix a second socket cannot bind a port that is in
// LISTEN state unless both set SO_REUSEPORT, which Go never does.
func listenControl(network, address string, c syscall.RawConn) error { return nil }
