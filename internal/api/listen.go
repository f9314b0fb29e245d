package api

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Listen opens a TCP listener on a loopback address. It refuses anything
// else (0.0.0.0, ::, a LAN address): the agent must never be reachable
// from another machine. The socket is bound exclusively (on Windows
// SO_EXCLUSIVEADDRUSE, see listen_windows.go; elsewhere a second bind of
// the same port fails anyway), so a squatter cannot share the port and an
// agent that finds the port taken fails loudly.
func Listen(ctx context.Context, addr netip.AddrPort) (net.Listener, error) {
	ip := addr.Addr().Unmap()
	if !ip.IsLoopback() || ip.Zone() != "" {
		return nil, fmt.Errorf("api: refusing to listen on %s: not a loopback address", addr)
	}
	network := "tcp4"
	if ip.Is6() {
		network = "tcp6"
	}
	lc := net.ListenConfig{Control: listenControl}
	ln, err := lc.Listen(ctx, network, netip.AddrPortFrom(ip, addr.Port()).String())
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w", addr, err)
	}
	return ln, nil
}
