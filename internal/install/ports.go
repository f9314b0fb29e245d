package install

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Port scheme (docs/api.md "Discovery", docs/admin.md): the agent listens
// on the first port of PortFirst…PortLast where both 127.0.0.1 and ::1 are
// free, PortFirst (47180) on any single-user machine. On a shared host
// (RDS, Citrix) the second session's agent takes 47181, and so on. Each
// agent refuses connections from other OS users (internal/peercred), and
// presents a certificate only its own user's browsers trust, so a page
// probing the range reaches exactly one agent: its user's. A squatter on
// 47180 is skipped the same way.
const (
	PortFirst = 47180
	PortLast  = 47199
)

// ListenFunc binds one loopback address (api.Listen fits: it also sets
// SO_EXCLUSIVEADDRUSE on Windows).
type ListenFunc func(ctx context.Context, addr netip.AddrPort) (net.Listener, error)

// ListenLoopback binds 127.0.0.1 and [::1] on the same port, the first of
// first…last where both binds succeed, and returns the listeners and the
// port. When the host has no IPv6 loopback (IPv6 disabled), it binds
// 127.0.0.1 alone. listen nil uses a plain net.ListenConfig.
func ListenLoopback(ctx context.Context, listen ListenFunc, first, last int) ([]net.Listener, int, error) {
	if listen == nil {
		listen = func(ctx context.Context, a netip.AddrPort) (net.Listener, error) {
			network := "tcp4"
			if a.Addr().Is6() {
				network = "tcp6"
			}
			var lc net.ListenConfig
			return lc.Listen(ctx, network, a.String())
		}
	}
	if first <= 0 || last < first || last > 65535 {
		return nil, 0, fmt.Errorf("install: bad port range %d-%d", first, last)
	}
	v4 := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	var lastErr error
	for port := first; port <= last; port++ {
		l4, err := listen(ctx, netip.AddrPortFrom(v4, uint16(port)))
		if err != nil {
			lastErr = err
			continue
		}
		l6, err := listen(ctx, netip.AddrPortFrom(netip.IPv6Loopback(), uint16(port)))
		switch {
		case err == nil:
			return []net.Listener{l4, l6}, port, nil
		case noIPv6(err):
			return []net.Listener{l4}, port, nil
		default:
			l4.Close()
			lastErr = err
		}
	}
	return nil, 0, fmt.Errorf("install: no free port in %d-%d (both 127.0.0.1 and ::1): %w", first, last, lastErr)
}

func noIPv6(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT)
}
