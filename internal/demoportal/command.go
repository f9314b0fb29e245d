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
	"os"
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
	// TLS, first set wins: TLSCert/TLSKey files; a CA of the portal's own
	// in TLSDir; the agent's certificate in AgentTLSDir (when present);
	// else a CA of the portal's own in OwnTLSDir.
	TLSCert     string
	TLSKey      string
	TLSDir      string
	AgentTLSDir string
	OwnTLSDir   string
	MaxDocument int64
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
	fs.Var(&agents, "agent", "agent base `URL` the page tries, in order (repeatable; default: the page finds the agent on ports 47180-47199 of 127.0.0.1 and [::1])")
	fs.Var(&cas, "ca", "trust anchors `FILE` for cards: PEM, DER or .p7b, roots and intermediates, reloaded when changed (repeatable; default: the chain `cpsagent serve --virtual-card` writes, STATE-DIR/virtual/chain.pem)")
	fs.StringVar(&o.TestCards, "test-cards", "allow", "IGC-Santé test cards: allow, require or refuse")
	fs.StringVar(&stateDir, "state-dir", "", "the agent's state `DIR`: the portal keeps its TLS CA in DIR/demo-portal and finds the virtual card's chain in DIR/virtual (default: the agent's default)")
	fs.StringVar(&o.TLSDir, "tls-dir", "", "use a CA of the portal's own, kept in `DIR` (default: serve the agent's certificate from STATE-DIR/tls when it exists, else a CA of its own in STATE-DIR/demo-portal)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "serve this certificate chain `FILE` (PEM) instead of one from the portal's CA")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key `FILE` (PEM) of --tls-cert")
	fs.Int64Var(&maxMiB, "max-document-mib", defaultMaxDocument>>20, "largest document accepted, in `MiB`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent demo-portal [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the demo portal on its own HTTPS origin. With the virtual card:")
		fmt.Fprintln(stderr, "  cpsagent serve --virtual-card --allow-origin https://127.0.0.1:47190 &")
		fmt.Fprintln(stderr, "  cpsagent demo-portal")
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
	if stateDir == "" && ((o.TLSDir == "" && o.TLSCert == "") || len(o.CAFiles) == 0) {
		if stateDir, err = config.StateDir(); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	if o.TLSDir == "" && o.TLSCert == "" {
		o.AgentTLSDir = filepath.Join(stateDir, "tls")
		o.OwnTLSDir = filepath.Join(stateDir, "demo-portal")
	}
	if len(o.CAFiles) == 0 {
		chain := filepath.Join(stateDir, "virtual", "chain.pem")
		if _, err := os.Stat(chain); err != nil {
			return nil, fmt.Errorf("%w: --ca is required: the certificates cards must chain to (%s, written by 'cpsagent serve --virtual-card', does not exist)", ErrUsage, chain)
		}
		o.CAFiles = []string{chain}
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
	v := &cpsverify.Verifier{
		AllowTestCards:   o.TestCards == "allow",
		RequireTestCards: o.TestCards == "require",
	}
	if _, _, err := cpsverify.LoadTrust(o.CAFiles...); err != nil {
		return fmt.Errorf("%w: --ca: %w", ErrUsage, err)
	}
	var err error

	tlsConf, trustNote, err := serverTLS(o)
	if err != nil {
		return err
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
	srv, err := New(Config{Origin: origin, AgentEndpoints: o.AgentEndpoints, Verifier: v, TrustFiles: o.CAFiles, MaxDocumentSize: o.MaxDocument, Logger: log})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}

	hs := &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	fmt.Fprintf(stdout, "cpsagent demo portal on %s/\n", origin)
	fmt.Fprintf(stdout, "  the agent must allow it:   cpsagent serve --allow-origin %s\n", origin)
	fmt.Fprintf(stdout, "  cards must chain to:       %s\n", strings.Join(o.CAFiles, ", "))
	fmt.Fprint(stdout, trustNote)

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

// serverTLS picks the portal's certificate (see Options) and says what the
// browser must trust.
func serverTLS(o *Options) (*tls.Config, string, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.TLSCert != "":
		fc, err := newFileCertificate(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("%w: --tls-cert/--tls-key: %w", ErrUsage, err)
		}
		conf.GetCertificate = fc.get
		return conf, "", nil
	case o.TLSDir == "" && o.AgentTLSDir != "" && fileExists(filepath.Join(o.AgentTLSDir, agentCertFile)):
		fc, err := newFileCertificate(filepath.Join(o.AgentTLSDir, agentCertFile), filepath.Join(o.AgentTLSDir, agentKeyFile))
		if err != nil {
			return nil, "", fmt.Errorf("agent certificate: %w", err)
		}
		conf.GetCertificate = fc.get
		return conf, fmt.Sprintf("  TLS: the agent's certificate (%s): a browser that trusts the agent trusts the portal\n", o.AgentTLSDir), nil
	}
	dir := o.TLSDir
	if dir == "" {
		dir = o.OwnTLSDir
	}
	dt, err := LoadOrCreateTLS(dir, time.Now())
	if err != nil {
		return nil, "", fmt.Errorf("portal TLS: %w", err)
	}
	conf.Certificates = []tls.Certificate{dt.Leaf}
	note := fmt.Sprintf("  the browser must trust:    %s\n"+
		"    (Chromium on Linux: certutil -d sql:$HOME/.pki/nssdb -A -n 'cpsagent demo portal' -t C,, -i %s)\n", dt.CAPath, dt.CAPath)
	return conf, note, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
