package peercred

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
)

// procNetFiles may be changed by tests.
var procNetFiles = [2]string{"/proc/net/tcp", "/proc/net/tcp6"}

func self() (User, error) { return User(strconv.Itoa(os.Geteuid())), nil }

func owner(us, peer netip.AddrPort) (User, error) {
	files := procNetFiles[:]
	if !peer.Addr().Is4() && !peer.Addr().Is4In6() {
		files = procNetFiles[1:] // a true IPv6 peer is only in tcp6
	}
	for _, name := range files {
		uid, ok, err := scanProcFile(name, peer, us)
		if err != nil {
			return "", err
		}
		if ok {
			return User(strconv.FormatUint(uint64(uid), 10)), nil
		}
	}
	return "", fmt.Errorf("%w: %v → %v", ErrNotFound, peer, us)
}

func scanProcFile(name string, local, remote netip.AddrPort) (uint32, bool, error) {
	f, err := os.Open(name)
	if os.IsNotExist(err) {
		return 0, false, nil // IPv6 disabled: no tcp6
	}
	if err != nil {
		return 0, false, fmt.Errorf("peercred: %w", err)
	}
	defer f.Close()
	uid, ok, err := findProcRow(f, local, remote)
	if err != nil {
		return 0, false, fmt.Errorf("peercred: reading %s: %w", name, err)
	}
	return uid, ok, nil
}
