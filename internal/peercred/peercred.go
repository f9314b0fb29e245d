// Package peercred tells which OS user owns the other end of a loopback TCP
// connection, and wraps a net.Listener so that the agent only ever serves
// its own user.
//
// On a shared host (RDS, Citrix, fast user switching) every session shares
// one loopback interface: user B's browser, or any process of user B, can
// connect to user A's agent. TLS and the Origin check do not stop a local
// process, so the agent asks the kernel who owns the peer socket and closes
// the connection before reading a byte when it is another user
// (../shared/docs/security.md §3.4 item 4, §3.5).
//
// How the owner is found:
//
//   - Linux: both ends of a loopback connection are sockets of this host, so
//     the peer socket is the row of /proc/net/tcp (or tcp6) whose local
//     address is our remote address and whose remote address is our local
//     address; its uid column is the owner. The uid is shown mapped into the
//     reader's user namespace (a sandboxed systemd user service sees other
//     users as 65534), which keeps the comparison right.
//   - Windows: GetExtendedTcpTable (TCP_TABLE_OWNER_PID_CONNECTIONS) gives
//     the PID owning the peer row; the PID's primary token gives the user
//     SID. A process that cannot be opened (another user's, as a standard
//     user) is refused.
//   - macOS and others: not implemented (see peercred_other.go); Owner
//     returns ErrUnsupported and Listener lets every local connection
//     through after logging that once.
//
// A User is compared as an opaque string: a decimal uid on Unix, a SID
// string (S-1-5-21-…) on Windows.
package peercred

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// User is an OS user: a decimal uid on Unix, a SID string on Windows.
type User string

// Errors returned by Owner.
var (
	// ErrUnsupported: this OS has no implementation; callers decide
	// whether to allow (Listener does, and logs it once).
	ErrUnsupported = errors.New("peercred: finding the owner of a TCP peer is not supported on this system")
	// ErrNotFound: no socket of this host matches the connection (the
	// peer closed already, or it is not a local connection).
	ErrNotFound = errors.New("peercred: peer socket not found")
	// ErrNotLoopback: the connection is not between two loopback addresses.
	ErrNotLoopback = errors.New("peercred: not a loopback TCP connection")
)

// Self returns the user running this process.
func Self() (User, error) { return self() }

// Owner returns the user owning the peer socket of c, a TCP connection
// accepted on (or dialled to) a loopback address.
func Owner(c net.Conn) (User, error) {
	local, remote, err := endpoints(c)
	if err != nil {
		return "", err
	}
	return owner(local, remote)
}

// OwnerOf returns the user owning the socket whose local address is peer
// and whose remote address is us: the other end, seen from us.
func OwnerOf(us, peer netip.AddrPort) (User, error) {
	if !us.Addr().Unmap().IsLoopback() || !peer.Addr().Unmap().IsLoopback() {
		return "", ErrNotLoopback
	}
	return owner(us, peer)
}

func endpoints(c net.Conn) (local, remote netip.AddrPort, err error) {
	la, ok1 := c.LocalAddr().(*net.TCPAddr)
	ra, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || la == nil || ra == nil {
		return local, remote, ErrNotLoopback
	}
	local, remote = la.AddrPort(), ra.AddrPort()
	if !local.Addr().Unmap().IsLoopback() || !remote.Addr().Unmap().IsLoopback() {
		return local, remote, ErrNotLoopback
	}
	return local, remote, nil
}

// Refusal describes a connection Listener closed.
type Refusal struct {
	Remote net.Addr
	// Owner is the peer's user when it was found ("" otherwise).
	Owner User
	// Err is why the owner could not be checked (nil when it was found
	// and differs from the allowed user).
	Err error
}

func (r Refusal) String() string {
	if r.Err != nil {
		return fmt.Sprintf("refused connection from %v: owner unknown: %v", r.Remote, r.Err)
	}
	return fmt.Sprintf("refused connection from %v: owned by user %s", r.Remote, r.Owner)
}

// Option configures Listener.
type Option func(*listener)

// OnRefuse is called (on the Accept goroutine; keep it short) for every
// connection that is closed because it belongs to another user or its
// owner could not be found.
func OnRefuse(f func(Refusal)) Option { return func(l *listener) { l.onRefuse = f } }

// OnUnsupported is called once, on the first connection, when this OS has
// no owner lookup and connections are therefore let through unchecked.
func OnUnsupported(f func(error)) Option { return func(l *listener) { l.onUnsupported = f } }

// Listener returns a net.Listener whose Accept only returns connections
// owned by allow. Other connections are closed before anything is read
// from them, and Accept keeps waiting. On a system where the owner cannot
// be found (ErrUnsupported) connections are accepted, and OnUnsupported is
// called once.
func Listener(l net.Listener, allow User, opts ...Option) net.Listener {
	pl := &listener{Listener: l, allow: allow, lookup: Owner}
	for _, o := range opts {
		o(pl)
	}
	return pl
}

type listener struct {
	net.Listener
	allow         User
	lookup        func(net.Conn) (User, error)
	onRefuse      func(Refusal)
	onUnsupported func(error)
	once          sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.check(c) {
			return c, nil
		}
		_ = c.Close()
	}
}

// check reports whether c may be served.
func (l *listener) check(c net.Conn) bool {
	u, err := l.lookup(c)
	switch {
	case errors.Is(err, ErrUnsupported):
		l.once.Do(func() {
			if l.onUnsupported != nil {
				l.onUnsupported(err)
			}
		})
		return true
	case err != nil:
		l.refuse(Refusal{Remote: c.RemoteAddr(), Err: err})
		return false
	case u != l.allow:
		l.refuse(Refusal{Remote: c.RemoteAddr(), Owner: u})
		return false
	}
	return true
}

func (l *listener) refuse(r Refusal) {
	if l.onRefuse != nil {
		l.onRefuse(r)
	}
}

// Wrap wraps every listener with Listener for the user running this
// process: what the agent's serve does with its 127.0.0.1 and [::1]
// listeners.
func Wrap(lns []net.Listener, opts ...Option) ([]net.Listener, error) {
	me, err := Self()
	if err != nil {
		return nil, err
	}
	out := make([]net.Listener, len(lns))
	for i, l := range lns {
		out[i] = Listener(l, me, opts...)
	}
	return out, nil
}
