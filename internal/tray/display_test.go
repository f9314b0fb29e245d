package tray

import (
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

func TestX11Addresses(t *testing.T) {
	local := [][2]string{{"unix", "/tmp/.X11-unix/X0"}}
	if runtime.GOOS == "linux" {
		local = append(local, [2]string{"unix", "@/tmp/.X11-unix/X0"})
	}
	for _, tt := range []struct {
		in   string
		want [][2]string
	}{
		{":0", local},
		{":0.0", local},
		{"unix:0", local},
		{"localhost:10.0", [][2]string{{"tcp", "localhost:6010"}}},
		{"[::1]:1", [][2]string{{"tcp", "[::1]:6001"}}},
		{"garbage", nil},
		{":x", nil},
	} {
		got := x11Addresses(tt.in)
		if !slices.Equal(got, tt.want) {
			t.Errorf("x11Addresses(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDisplayAvailable(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("always available there")
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if ok, why := DisplayAvailable(env(nil)); ok || why == "" {
		t.Fatalf("no variables: %v %q", ok, why)
	}
	// A DISPLAY naming a server that is not there (stale ssh -X session).
	if ok, _ := DisplayAvailable(env(map[string]string{"DISPLAY": "unix:59713"})); ok {
		t.Fatal("stale DISPLAY accepted")
	}
	// A Wayland socket that accepts connections.
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "wayland-7"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if ok, why := DisplayAvailable(env(map[string]string{"WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": dir})); !ok {
		t.Fatalf("wayland socket refused: %s", why)
	}
	if ok, _ := DisplayAvailable(env(map[string]string{"WAYLAND_DISPLAY": "wayland-8", "XDG_RUNTIME_DIR": dir})); ok {
		t.Fatal("missing wayland socket accepted")
	}
}
