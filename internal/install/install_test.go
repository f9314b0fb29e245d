package install

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseCertutilList(t *testing.T) {
	out := "\nCertificate Nickname                                         Trust Attributes\n" +
		"                                                             SSL,S/MIME,JAR/XPI\n\n" +
		"cpsagent local CA 0123456789abcdef                           C,,  \n" +
		"My Client Cert                                               u,u,u\n"
	got := parseCertutilList([]byte(out))
	want := []NSSEntry{{"cpsagent local CA 0123456789abcdef", "C,,"}, {"My Client Cert", "u,u,u"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := len(parseCertutilList([]byte("\nCertificate Nickname    Trust Attributes\n     SSL,S/MIME,JAR/XPI\n\n"))); n != 0 {
		t.Fatalf("empty DB: %d rows", n)
	}
}

func FuzzParseCertutilList(f *testing.F) {
	f.Add([]byte("Certificate Nickname  Trust Attributes\n  SSL,S/MIME,JAR/XPI\n\nx  C,,\n"))
	f.Add([]byte(""))
	f.Add([]byte("SSL,S/MIME,JAR/XPI\n\t\n  a b c  P,,\nnospace\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range parseCertutilList(b) {
			if strings.ContainsAny(e.Trust, " \t") || e.Nickname != strings.TrimSpace(e.Nickname) {
				t.Fatalf("bad row %+v", e)
			}
		}
	})
}

func TestQuoting(t *testing.T) {
	tests := []struct{ in, systemd, desktop string }{
		{"/usr/bin/cpsagent", "/usr/bin/cpsagent", "/usr/bin/cpsagent"},
		{"/home/a b/bin/cpsagent", `"/home/a b/bin/cpsagent"`, `"/home/a b/bin/cpsagent"`},
		{"/opt/100%/cpsagent", "/opt/100%%/cpsagent", `"/opt/100%%/cpsagent"`},
		{`/o"dd/$x`, `"/o\"dd/$$x"`, `"/o\\"dd/\\$x"`},
	}
	for _, tt := range tests {
		if got := systemdQuote(tt.in); got != tt.systemd {
			t.Errorf("systemdQuote(%q) = %q, want %q", tt.in, got, tt.systemd)
		}
		if got := desktopQuote(tt.in); got != tt.desktop {
			t.Errorf("desktopQuote(%q) = %q, want %q", tt.in, got, tt.desktop)
		}
	}
	if got := RenderPlist("/A&B/cpsagent"); !strings.Contains(string(got), "<string>/A&amp;B/cpsagent</string>") {
		t.Errorf("plist not escaped:\n%s", got)
	}
}

// TestPackagingCopies keeps packaging/ identical to the templates rendered
// for /usr/bin/cpsagent.
func TestPackagingCopies(t *testing.T) {
	for _, c := range []struct {
		file string
		want []byte
	}{
		{"../../packaging/linux/cpsagent.service", RenderUnit("/usr/bin/cpsagent")},
		{"../../packaging/linux/cpsagent-autostart.desktop", RenderDesktop("/usr/bin/cpsagent")},
		{"../../packaging/macos/io.github.cpsagent.plist", RenderPlist("/usr/local/bin/cpsagent")},
	} {
		got, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(c.want) {
			t.Errorf("%s differs from the template in internal/install/assets (regenerate it: go run ./packaging/cmd/genassets)", c.file)
		}
	}
}

func TestInstanceLock(t *testing.T) {
	dir := t.TempDir()
	release, err := AcquireInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Not published yet: the second start is told one is starting.
	_, err = AcquireInstance(dir)
	var are *AlreadyRunningError
	if !errors.As(err, &are) || !errors.Is(err, ErrAlreadyRunning) || are.Info != nil {
		t.Fatalf("second acquire: %v", err)
	}
	if info, err := RunningInstance(dir); err != nil || info != nil {
		t.Fatalf("RunningInstance before publish = %+v, %v", info, err)
	}
	if err := PublishInstance(dir, InstanceInfo{Port: 47181, Addrs: []string{"127.0.0.1:47181", "[::1]:47181"}, Version: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	_, err = AcquireInstance(dir)
	if !errors.As(err, &are) || are.Info == nil || are.Info.Port != 47181 || are.Info.PID != os.Getpid() {
		t.Fatalf("second acquire after publish: %#v", err)
	}
	want := "cpsagent is already running for this user (pid " + strconv.Itoa(os.Getpid()) + ", at https://127.0.0.1:47181)"
	if err.Error() != want || are.ExitCode() != ExitAlreadyRunning {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	if fi, err := os.Stat(filepath.Join(dir, InstanceInfoFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("instance.json: %v %v", fi.Mode(), err)
	}
	info, err := RunningInstance(dir)
	if err != nil || info == nil || info.URL() != "https://127.0.0.1:47181" {
		t.Fatalf("RunningInstance = %+v, %v", info, err)
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, InstanceInfoFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance.json left after release: %v", err)
	}
	if _, err := RunningInstance(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("RunningInstance after release: %v", err)
	}
	release2, err := AcquireInstance(dir)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	release2()
}

func TestInstanceStaleInfo(t *testing.T) {
	// A crashed agent leaves instance.json but no lock: a new start
	// takes over and drops the stale file.
	dir := t.TempDir()
	if err := PublishInstance(dir, InstanceInfo{PID: 999999, Port: 47180}); err != nil {
		t.Fatal(err)
	}
	if _, err := RunningInstance(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("RunningInstance with a stale file: %v", err)
	}
	release, err := AcquireInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := os.Stat(filepath.Join(dir, InstanceInfoFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("stale instance.json kept")
	}
}

func TestListenLoopbackSkipsBusyPort(t *testing.T) {
	// A free base port, then squat it on 127.0.0.1 only.
	probe, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := probe.Addr().(*net.TCPAddr).Port
	if base > 65500 {
		probe.Close()
		t.Skip("ephemeral port too high for a range")
	}
	defer probe.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ls, port, err := ListenLoopback(ctx, nil, base, base+20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	if port <= base {
		t.Fatalf("port %d, want above the squatted %d", port, base)
	}
	for _, l := range ls {
		if l.Addr().(*net.TCPAddr).Port != port {
			t.Fatalf("listener on %v, want port %d", l.Addr(), port)
		}
	}
	if _, _, err := ListenLoopback(ctx, nil, base, base); err == nil {
		t.Fatal("a range with only a busy port succeeded")
	}
	if _, _, err := ListenLoopback(ctx, nil, 10, 5); err == nil {
		t.Fatal("bad range accepted")
	}
}

func TestListenLoopbackIPv6Squatted(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer probe.Close()
	base := probe.Addr().(*net.TCPAddr).Port
	if base > 65500 {
		t.Skip("ephemeral port too high for a range")
	}
	ls, port, err := ListenLoopback(context.Background(), nil, base, base+20)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		l.Close()
	}
	if port == base {
		t.Fatal("took a port whose ::1 side is squatted")
	}
	// The 127.0.0.1 side of the squatted port was released again.
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(base)))
	if err != nil {
		t.Fatalf("127.0.0.1:%d left bound: %v", base, err)
	}
	l.Close()
}
