package api

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// soExclusiveAddrUse is SO_EXCLUSIVEADDRUSE, ((int)(~SO_REUSEADDR)) in
// winsock2.h; golang.org/x/sys/windows does not define it.
const soExclusiveAddrUse = ^windows.SO_REUSEADDR

// listenControl sets SO_EXCLUSIVEADDRUSE: without it another process can
// bind the same port with SO_REUSEADDR and take over the traffic
// (security.md §3.5).
func listenControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, soExclusiveAddrUse, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
