package demoportal

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/pkg/cpsverify"
)

// DefaultListen is the demo portal's default address.
const DefaultListen = "127.0.0.1:47190"

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage")

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// Options are the demo-portal command's settings.
type Options struct {
	Listen         string
	Origin         string
	AgentEndpoints []string
	CAFiles        []string
	TestCards      string // allow | require | refuse
	TLSDir         string
	TLSCert        string
	TLSKey         string
	MaxDocument    int64
}

// ParseFlags parses the demo-portal command line.
func ParseFlags(args []string, stderr io.Writer) (*Options, error) {
	o := &Options{}
	var agents, cas listFlag
	var stateDir string
	var maxMiB int64
	fs := flag.NewFlagSet("cpsagent demo-portal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Listen, "listen", DefaultListen, "loopback `ADDR:PORT` to serve the portal on (port 0: any free port)")
	fs.StringVar(&o.Origin, "origin", "", "portal `ORIGIN` as browsers see it (default https://ADDR:PORT of --listen)")
	fs.Var(&agents, "agent", "agent base `URL` the page tries, in order (repeatable; default https://127.0.0.1:47180 then https://[::1]:47180)")
	fs.Var(&cas, "ca", "trust anchors `FILE` for cards: PEM, DER or .p7b, roots and intermediates (repeatable, required)")
	fs.StringVar(&o.TestCards, "test-cards", "allow", "IGC-Santé test cards: allow, require or refuse")
	fs.StringVar(&stateDir, "state-dir", "", "state `DIR`; the portal's TLS CA is kept in DIR/demo-portal (default: the agent's state directory)")
	fs.StringVar(&o.TLSDir, "tls-dir", "", "`DIR` holding the portal's own CA (default STATE-DIR/demo-portal)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "serve this certificate chain `FILE` (PEM) instead of one from the portal's CA")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key `FILE` (PEM) of --tls-cert")
	fs.Int64Var(&maxMiB, "max-document-mib", defaultMaxDocument>>20, "largest document accepted, in `MiB`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent demo-portal --ca FILE [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the demo portal on its own HTTPS origin. The agent must allow that origin:")
		fmt.Fprintln(stderr, "  cpsagent serve --allow-origin https://127.0.0.1:47190")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	o.AgentEndpoints, o.CAFiles = agents, cas
	if len(o.CAFiles) == 0 {
		return nil, fmt.Errorf("%w: --ca is required: the certificates cards must chain to (for the virtual card, its test PKI chain)", ErrUsage)
	}
	switch o.TestCards {
	case "allow", "require", "refuse":
	default:
		return nil, fmt.Errorf("%w: --test-cards must be allow, require or refuse", ErrUsage)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrUsage)
	}
	ap, err := netip.ParseAddrPort(o.Listen)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("%w: --listen must be a loopback ADDR:PORT such as %s", ErrUsage, DefaultListen)
	}
	if maxMiB < 1 || maxMiB > 64 {
		return nil, fmt.Errorf("%w: --max-document-mib must be 1..64", ErrUsage)
	}
	o.MaxDocument = maxMiB << 20
	if o.TLSDir == "" && o.TLSCert == "" {
		if stateDir == "" {
			if stateDir, err = config.StateDir(); err != nil {
				return nil, fmt.Errorf("state directory: %w", err)
			}
		}
		o.TLSDir = filepath.Join(stateDir, "demo-portal")
	}
	return o, nil
}

// RunCommand is `cpsagent demo-portal`: it serves the portal until ctx
// ends. Command-line mistakes match ErrUsage.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(stderr), zapcore.InfoLevel))
	defer func() { _ = log.Sync() }()
	return Run(ctx, o, stdout, log)
}

// Run serves the portal with o until ctx ends.
func Run(ctx context.Context, o *Options, stdout io.Writer, log *zap.Logger) error {
	roots, inters, err := cpsverify.LoadTrust(o.CAFiles...)
	if err != nil {
		return fmt.Errorf("%w: --ca: %w", ErrUsage, err)
	}
	v := &cpsverify.Verifier{
		Roots:            roots,
		Intermediates:    inters,
		AllowTestCards:   o.TestCards == "allow",
		RequireTestCards: o.TestCards == "require",
	}

	var cert tls.Certificate
	caPath := ""
	if o.TLSCert != "" {
		if cert, err = tls.LoadX509KeyPair(o.TLSCert, o.TLSKey); err != nil {
			return fmt.Errorf("%w: --tls-cert/--tls-key: %w", ErrUsage, err)
		}
	} else {
		dt, err := LoadOrCreateTLS(o.TLSDir, time.Now())
		if err != nil {
			return fmt.Errorf("portal TLS: %w", err)
		}
		cert, caPath = dt.Leaf, dt.CAPath
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	origin := o.Origin
	if origin == "" {
		origin = "https://" + ln.Addr().String()
	}
	srv, err := New(Config{Origin: origin, AgentEndpoints: o.AgentEndpoints, Verifier: v, MaxDocumentSize: o.MaxDocument, Logger: log})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}

	hs := &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	fmt.Fprintf(stdout, "cpsagent demo portal on %s/\n", origin)
	fmt.Fprintf(stdout, "  the agent must allow it:   cpsagent serve --allow-origin %s\n", origin)
	if caPath != "" {
		fmt.Fprintf(stdout, "  the browser must trust:    %s\n", caPath)
		fmt.Fprintf(stdout, "    (Chromium on Linux: certutil -d sql:$HOME/.pki/nssdb -A -n 'cpsagent demo portal' -t C,, -i %s)\n", caPath)
	}

	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
