package peercred

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// testUser is created (as a system user without home) when absent; CI runs
// as root.
const testUser = "cpsagent-test2"

// childDialEnv makes the test binary act as a client: dial the address,
// send a line, and report whether the server answered or closed.
const childDialEnv = "PEERCRED_TEST_DIAL"

func TestMain(m *testing.M) {
	if addr := os.Getenv(childDialEnv); addr != "" {
		os.Exit(dialChild(addr))
	}
	os.Exit(m.Run())
}

func dialChild(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Println("dial-error", err)
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		fmt.Println("closed", err)
		return 0
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			fmt.Println("timeout")
			return 0
		}
		fmt.Println("closed")
		return 0
	}
	fmt.Printf("answered %q\n", b)
	return 0
}

// echoServer serves l: every accepted connection gets "pong\n" back.
func echoServer(t *testing.T, l net.Listener) {
	t.Helper()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 5)
				if _, err := io.ReadFull(c, b); err == nil {
					_, _ = c.Write([]byte("pong\n"))
				}
			}()
		}
	}()
}

func TestOwnerSameUser(t *testing.T) {
	me, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if me != User(strconv.Itoa(os.Geteuid())) {
		t.Fatalf("Self = %q", me)
	}
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(network, func(t *testing.T) {
			l, err := net.Listen("tcp", network)
			if err != nil {
				t.Skipf("no %s on this host: %v", network, err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					accepted <- c
				}
				close(accepted)
			}()
			cli, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			srv := <-accepted
			if srv == nil {
				t.Fatal("accept failed")
			}
			defer srv.Close()
			got, err := Owner(srv)
			if err != nil {
				t.Fatalf("Owner (server side): %v", err)
			}
			if got != me {
				t.Fatalf("Owner = %q, want %q", got, me)
			}
			// The lookup is symmetric: the client can check the server.
			if got, err := Owner(cli); err != nil || got != me {
				t.Fatalf("Owner (client side) = %q, %v", got, err)
			}
		})
	}
}

func TestOwnerNotLoopback(t *testing.T) {
	us := netip4("192.0.2.1:1")
	if _, err := OwnerOf(us, netip4("127.0.0.1:2")); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("err = %v, want ErrNotLoopback", err)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if _, err := Owner(c1); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("pipe: err = %v, want ErrNotLoopback", err)
	}
}

func TestOwnerGone(t *testing.T) {
	// A peer port nobody uses: not found, and Listener would refuse.
	_, err := OwnerOf(netip4("127.0.0.1:1"), netip4("127.0.0.1:2"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestListenerSameUserAccepted(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan Refusal, 4)
	wrapped, err := Wrap([]net.Listener{raw}, OnRefuse(func(r Refusal) { refused <- r }))
	if err != nil {
		t.Fatal(err)
	}
	l := wrapped[0]
	defer l.Close()
	echoServer(t, l)
	if got := runDial(t, l.Addr().String(), nil); got != "answered \"pong\\n\"" {
		t.Fatalf("same-user client: %q", got)
	}
	select {
	case r := <-refused:
		t.Fatalf("unexpected refusal: %v", r)
	default:
	}
}

func TestListenerWrongUserRefused(t *testing.T) {
	// The allowed user is someone else: our own connection is refused.
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan Refusal, 4)
	l := Listener(raw, User("4242424"), OnRefuse(func(r Refusal) { refused <- r }))
	defer l.Close()
	echoServer(t, l)
	if got := runDial(t, l.Addr().String(), nil); got != "closed" {
		t.Fatalf("client of another user: %q, want closed", got)
	}
	r := <-refused
	me, _ := Self()
	if r.Owner != me || r.Err != nil {
		t.Fatalf("refusal = %+v, want owner %s", r, me)
	}
}

// TestListenerOtherUIDRefused runs the client as a second OS user: it is
// refused, while a client of the agent's own user still gets through.
func TestListenerOtherUIDRefused(t *testing.T) {
	uid, gid := otherUser(t)
	me, _ := Self()
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			raw, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skipf("no %s on this host: %v", addr, err)
			}
			refused := make(chan Refusal, 4)
			l := Listener(raw, me, OnRefuse(func(r Refusal) { refused <- r }))
			defer l.Close()
			echoServer(t, l)

			got := runDial(t, l.Addr().String(), &syscall.Credential{Uid: uid, Gid: gid})
			if got != "closed" {
				t.Fatalf("client running as uid %d: %q, want closed", uid, got)
			}
			select {
			case r := <-refused:
				if r.Owner != User(strconv.Itoa(int(uid))) {
					t.Fatalf("refusal = %+v, want owner %d", r, uid)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no refusal reported")
			}
			if got := runDial(t, l.Addr().String(), nil); got != "answered \"pong\\n\"" {
				t.Fatalf("own-user client after a refusal: %q", got)
			}
		})
	}
}

// otherUser returns the uid/gid of testUser, creating it if needed, or
// skips (fails under CI=true) when that is impossible.
func otherUser(t *testing.T) (uint32, uint32) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("running a client as another uid needs root (CI runs as root)")
	}
	u, err := user.Lookup(testUser)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", testUser).CombinedOutput()
		if err != nil {
			fail("useradd %s: %v: %s", testUser, err, out)
		}
		if u, err = user.Lookup(testUser); err != nil {
			fail("user %s: %v", testUser, err)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return uint32(uid), uint32(gid)
}

// runDial re-executes the test binary as a client of addr, optionally as
// another user, and returns its one-line report.
func runDial(t *testing.T, addr string, cred *syscall.Credential) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		exe = worldExecutableCopy(t, exe)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childDialEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client: %v: %s", err, stderr.Bytes())
	}
	return string(bytes.TrimSpace(out))
}

// worldExecutableCopy copies the test binary where another user can run it.
func worldExecutableCopy(t *testing.T, exe string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "peercred-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "client")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
