package install

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/localca"
)

// cliHome points HOME at a fresh directory and clears the XDG variables,
// as a user's login would have them.
func cliHome(t *testing.T) (home, state string) {
	t.Helper()
	root := t.TempDir()
	home = filepath.Join(root, "home")
	os.MkdirAll(home, 0o755)
	t.Setenv("HOME", home)
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"} {
		t.Setenv(v, "")
	}
	return home, filepath.Join(root, "state")
}

func TestRunInstallUninstall(t *testing.T) {
	needTool(t, "certutil")
	fakeBin(t, false)
	home, state := cliHome(t)
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if err := RunInstall(ctx, []string{"--state-dir", state, "--trust-only"}, &stdout, &stderr); err != nil {
		t.Fatalf("install: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "cpsagent install: done (2 added") {
		t.Errorf("output:\n%s", stdout.String())
	}
	a, _, err := localca.Ensure(filepath.Join(state, TLSDir))
	if err != nil {
		t.Fatal(err)
	}
	if got := trustOf(t, filepath.Join(home, ".pki/nssdb"), Nickname(a.CACert())); got != "C,," {
		t.Fatalf("the agent's CA is not trusted: %q", got)
	}
	st, err := VerifyTrust(ctx, Options{StateDir: state, Home: home, CA: a.CACert()})
	if err != nil || len(st) != 2 || !st[0].Present || !st[0].Current || !st[1].Present {
		t.Fatalf("VerifyTrust = %+v, %v", st, err)
	}

	stdout.Reset()
	if err := RunUninstall(ctx, []string{"--state-dir", state, "--purge", "--quiet"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("--quiet printed %q", stdout.String())
	}
	if got := tree(t, home); len(got) != 1 {
		t.Errorf("home after uninstall --purge: %v", got)
	}
	if exists(state) {
		t.Error("state kept after --purge")
	}
	if _, err := VerifyTrust(ctx, Options{StateDir: state, Home: home}); !errors.Is(err, ErrNoManifest) {
		t.Errorf("VerifyTrust after uninstall: %v", err)
	}
}

func TestRunInstallUsage(t *testing.T) {
	cliHome(t)
	for _, args := range [][]string{{"--bogus"}, {"extra"}} {
		err := RunInstall(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, ErrUsage) {
			t.Errorf("install %v: %v, want ErrUsage", args, err)
		}
		err = RunUninstall(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, ErrUsage) {
			t.Errorf("uninstall %v: %v, want ErrUsage", args, err)
		}
	}
	for name, run := range map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"install": RunInstall, "uninstall": RunUninstall,
	} {
		var stderr bytes.Buffer
		if err := run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &stderr); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h: %v, want flag.ErrHelp", name, err)
		}
		for _, want := range []string{"usage: cpsagent " + name + " [flags]\n\n", ".\n\n  -config FILE", "-quiet", "-state-dir DIR"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%s -h: no %q in\n%s", name, want, stderr.String())
			}
		}
	}
}

// TestRunInstallWhileAgentRuns: with an agent holding the instance lock,
// install only reads the CA (localca must not run in two processes).
func TestRunInstallWhileAgentRuns(t *testing.T) {
	needTool(t, "certutil")
	fakeBin(t, false)
	home, state := cliHome(t)
	a, _, err := localca.Ensure(filepath.Join(state, TLSDir))
	if err != nil {
		t.Fatal(err)
	}
	release, err := AcquireInstance(state)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	caFile := filepath.Join(state, TLSDir, localca.CAFile)
	before, _ := os.Stat(caFile)
	if err := RunInstall(context.Background(), []string{"--state-dir", state, "--trust-only", "--quiet"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(caFile)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("ca.pem rewritten while the agent runs")
	}
	if trustOf(t, filepath.Join(home, ".local/share/pki/nssdb"), Nickname(a.CACert())) != "C,," {
		t.Error("CA not installed")
	}
}

// The lock is held across processes, and a killed holder leaves no stale
// lock: the kernel drops it.
const holdLockEnv = "INSTALL_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdLockEnv); dir != "" {
		if _, err := AcquireInstance(dir); err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		if err := PublishInstance(dir, InstanceInfo{Port: 47185}); err != nil {
			os.Exit(1)
		}
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Minute) // killed by the test
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestInstanceAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	_, err = AcquireInstance(dir)
	var are *AlreadyRunningError
	if !errors.As(err, &are) || are.Info == nil || are.Info.PID != cmd.Process.Pid || are.Info.Port != 47185 {
		t.Fatalf("second instance: %v", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)+", at https://127.0.0.1:47185") {
		t.Fatalf("message: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	release, err := AcquireInstance(dir)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	release()
}
