package tray

import (
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// DisplayAvailable reports whether a graphical session can be reached, and
// why not. On Windows and macOS a user session always has one. Elsewhere
// (X11, Wayland) it needs DISPLAY or WAYLAND_DISPLAY naming a display server
// that accepts a connection: GTK, and so systray, exits the whole process
// when it cannot open the display, so this is checked first.
func DisplayAvailable(getenv func(string) string) (bool, string) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		return true, ""
	}
	if w := getenv("WAYLAND_DISPLAY"); w != "" {
		path := w
		if !filepath.IsAbs(path) {
			if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
				path = filepath.Join(dir, w)
			} else {
				path = ""
			}
		}
		if path != "" && dial("unix", path) {
			return true, ""
		}
	}
	d := getenv("DISPLAY")
	if d == "" {
		return false, "DISPLAY and WAYLAND_DISPLAY are not set"
	}
	for _, a := range x11Addresses(d) {
		if dial(a[0], a[1]) {
			return true, ""
		}
	}
	return false, "cannot connect to the display " + strconv.Quote(d)
}

// x11Addresses lists where the X server of display d listens: the local
// socket (file and Linux abstract namespace) for ":N" and "unix:N", TCP port
// 6000+N for "host:N".
func x11Addresses(d string) [][2]string {
	i := strings.LastIndexByte(d, ':')
	if i < 0 {
		return nil
	}
	host, num := d[:i], d[i+1:]
	if j := strings.IndexByte(num, '.'); j >= 0 {
		num = num[:j] // screen number
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return nil
	}
	if strings.HasPrefix(host, "/") { // XQuartz-style launchd socket path
		return [][2]string{{"unix", d}}
	}
	sock := "/tmp/.X11-unix/X" + strconv.Itoa(n)
	switch host {
	case "", "unix":
		out := [][2]string{{"unix", sock}}
		if runtime.GOOS == "linux" {
			out = append(out, [2]string{"unix", "@" + sock})
		}
		return out
	default:
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		return [][2]string{{"tcp", net.JoinHostPort(host, strconv.Itoa(6000+n))}}
	}
}

func dial(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
