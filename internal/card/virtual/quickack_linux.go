package virtual

import (
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge the next segments at once. Debian's
// vpcd driver writes each frame as two send() calls (header, then payload);
// with Nagle's algorithm on its side and delayed ACKs on ours, every APDU
// would wait about 40 ms for our ACK of the 2-byte header. TCP_QUICKACK is
// not sticky, so it is set again before every read.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
