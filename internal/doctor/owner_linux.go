package doctor

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// portOwner finds the process listening on 127.0.0.1/::1 TCP port: the
// socket inode from /proc/net/tcp{,6} (state 0A = LISTEN), then the process
// whose file descriptors include it. Only processes of the same user (or all,
// as root) can be seen; "" when not found.
func portOwner(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" {
				continue
			}
			_, p, ok := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseInt(p, 16, 32); ok && err == nil && int(n) == port {
				inodes[fields[9]] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, pd := range procs {
		fds, err := os.ReadDir(filepath.Join(pd, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(pd, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				comm, _ := os.ReadFile(filepath.Join(pd, "comm"))
				exe, _ := os.Readlink(filepath.Join(pd, "exe"))
				return fmt.Sprintf("pid %s %s (%s)", filepath.Base(pd), strings.TrimSpace(string(comm)), exe)
			}
		}
	}
	return ""
}
