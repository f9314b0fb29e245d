package demoportal

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "chain.pem")
	withChain := t.TempDir()
	if err := os.MkdirAll(filepath.Join(withChain, "virtual"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withChain, "virtual", "chain.pem"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr error
		check   func(t *testing.T, o *Options)
	}{
		{"defaults", []string{"--ca", ca, "--state-dir", dir}, nil, func(t *testing.T, o *Options) {
			if o.Listen != DefaultListen || o.TestCards != "allow" || o.TLSDir != "" || o.AgentTLSDir != filepath.Join(dir, "tls") ||
				o.OwnTLSDir != filepath.Join(dir, "demo-portal") || o.MaxDocument != 10<<20 {
				t.Errorf("%+v", o)
			}
		}},
		{"agents", []string{"--ca", ca, "--tls-dir", dir, "--agent", "https://127.0.0.1:1", "--agent", "https://127.0.0.1:2"}, nil, func(t *testing.T, o *Options) {
			if len(o.AgentEndpoints) != 2 || o.AgentEndpoints[1] != "https://127.0.0.1:2" {
				t.Errorf("%v", o.AgentEndpoints)
			}
		}},
		{"no ca, no virtual chain", []string{"--state-dir", dir}, ErrUsage, nil},
		{"virtual card chain by default", []string{"--state-dir", withChain}, nil, func(t *testing.T, o *Options) {
			if len(o.CAFiles) != 1 || o.CAFiles[0] != filepath.Join(withChain, "virtual", "chain.pem") {
				t.Errorf("CAFiles %v", o.CAFiles)
			}
		}},
		{"public listen", []string{"--ca", ca, "--tls-dir", dir, "--listen", "0.0.0.0:47190"}, ErrUsage, nil},
		{"bad test-cards", []string{"--ca", ca, "--tls-dir", dir, "--test-cards", "maybe"}, ErrUsage, nil},
		{"cert without key", []string{"--ca", ca, "--tls-cert", ca}, ErrUsage, nil},
		{"extra argument", []string{"--ca", ca, "--tls-dir", dir, "x"}, ErrUsage, nil},
		{"unknown flag", []string{"--nope"}, ErrUsage, nil},
		{"help", []string{"-h"}, flag.ErrHelp, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseFlags(tc.args, io.Discard)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

// TestRunCommand starts the real command on a free port and fetches the
// page over HTTPS with the portal's CA.
func TestRunCommand(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	chain := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(chain, w.chainPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- RunCommand(ctx, []string{"--ca", chain, "--state-dir", dir, "--listen", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v (%v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	origin := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "cpsagent demo portal on "), "/")
	if !strings.HasPrefix(origin, "https://127.0.0.1:") {
		t.Fatalf("first line %q", line)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "demo-portal", CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get(origin + "/api/config")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"origin":"`+origin+`"`) {
		t.Fatalf("config: %d %s", res.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
}

func TestRunCommandBadTrust(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := RunCommand(context.Background(), []string{"--ca", bad, "--tls-dir", dir, "--listen", "127.0.0.1:0"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v", err)
	}
}
