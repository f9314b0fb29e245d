package localca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serverLog collects the HTTP server's error log (handshake errors).
type serverLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *serverLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// waitFor waits until the log contains s: the server logs a handshake error
// after the client has seen the alert.
func (l *serverLog) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		got := l.buf.String()
		l.mu.Unlock()
		if strings.Contains(got, s) {
			return
		}
		time.Sleep(5 * time.Millisecond) // no event to wait on
	}
	t.Fatalf("server log lacks %q:\n%s", s, l.buf.String())
}

// serve runs an HTTPS server with the Authority's TLSConfig on addr.
func serve(t *testing.T, a *Authority, network, addr string) (string, *serverLog) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("SKIPPED: cannot listen on %s: %v", addr, err)
	}
	logs := &serverLog{}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ErrorLog: log.New(logs, "", 0),
	}
	go srv.Serve(tls.NewListener(ln, a.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), logs
}

func client(roots *x509.CertPool, tune func(*tls.Config), dialAddr string) *http.Client {
	cfg := &tls.Config{RootCAs: roots}
	if tune != nil {
		tune(cfg)
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: cfg,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, dialAddr) // "localhost" always reaches our listener
			},
		},
	}
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok" {
		return errors.New("bad body " + string(b))
	}
	return nil
}

func TestTLSServer(t *testing.T) {
	a, _, err := Ensure(newDir(t))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.CACertPEM())

	v4, logs := serve(t, a, "tcp4", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(v4)

	t.Run("localhost", func(t *testing.T) {
		if err := get(client(roots, nil, v4), "https://localhost:"+port+"/"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("127.0.0.1", func(t *testing.T) {
		if err := get(client(roots, nil, v4), "https://"+v4+"/"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("::1", func(t *testing.T) {
		v6, _ := serve(t, a, "tcp6", "[::1]:0")
		if err := get(client(roots, nil, v6), "https://"+v6+"/"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TLS 1.2 only is accepted", func(t *testing.T) {
		if err := get(client(roots, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, v4), "https://localhost:"+port+"/"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
			conn, err := tls.Dial("tcp", v4, &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: v})
			if err == nil {
				conn.Close()
				t.Fatalf("%s handshake succeeded", tls.VersionName(v))
			}
			if !strings.Contains(err.Error(), "remote error: tls: protocol version not supported") {
				t.Fatalf("%s: err = %v, want the server's protocol version alert", tls.VersionName(v), err)
			}
		}
		logs.waitFor(t, "client offered only unsupported versions: [302 301]")
	})
	t.Run("client without the CA", func(t *testing.T) {
		err := get(client(nil, nil, v4), "https://localhost:"+port+"/")
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("err = %v, want an unknown authority", err)
		}
	})
	t.Run("rebinding name", func(t *testing.T) {
		err := get(client(roots, nil, v4), "https://rebind.attacker.example:"+port+"/")
		if err == nil || !strings.Contains(err.Error(), "remote error") {
			t.Fatalf("err = %v, want the server to refuse the handshake", err)
		}
		logs.waitFor(t, `server name "rebind.attacker.example" is not served`)
	})
	t.Run("renewal without restart", func(t *testing.T) {
		before := a.Leaf()
		later := leafRenewAt(before).Add(time.Minute)
		if _, err := a.Renew(later); err != nil {
			t.Fatal(err)
		}
		// the client lives at the renewal time too (the new certificate starts then)
		conn, err := tls.Dial("tcp", v4, &tls.Config{RootCAs: roots, ServerName: "localhost", Time: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0]; got.Equal(before) || !got.Equal(a.Leaf()) {
			t.Fatal("the server still presents the old certificate")
		}
	})
}
