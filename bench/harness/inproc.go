package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/localca"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// InProcReader is the reader name of the in-process agent.
const InProcReader = "harness in-process reader"

// InProcOptions configure StartInProcess.
type InProcOptions struct {
	// Dir receives the local CA (required).
	Dir string
	// Origins allowed (default DefaultOrigin).
	Origins []string
	// Card is inserted in the reader; nil means a "medecin" virtual card.
	Card *virtual.Card
	// Wrap, when set, wraps the card before it goes into the reader (a
	// test's fault model).
	Wrap func(*virtual.Card) memreader.Card
	// Prompter answers the PIN dialogs; nil means FixedPIN with the card's
	// PIN.
	Prompter pinentry.Prompter
	// PINTimeout of the API (default 30 s).
	PINTimeout time.Duration
	// ReadHeaderTimeout of the server (default the API's).
	ReadHeaderTimeout time.Duration
	// Logger for the API and the engine (default none).
	Logger *zap.Logger
	// NoPreRead turns off the engine's identity read after insertion: the
	// first GET /v1/card then reads the card (StartInProcess waits for the
	// card to be seen instead of read).
	NoPreRead bool
}

// InProc is the agent's API, card engine and an in-memory reader running
// in this process on 127.0.0.1: the real request gate and handlers, no
// PC/SC and no pinentry process.
type InProc struct {
	Server *api.Server
	Engine *card.Engine
	Reader *memreader.Transport
	Card   *virtual.Card
	Addr   string // 127.0.0.1:PORT
	Base   string // https://127.0.0.1:PORT
	Client *http.Client
	TLS    *tls.Config // client configuration trusting the agent's CA

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// StartInProcess starts the in-process agent and waits until the card's
// identity has been read.
func StartInProcess(o InProcOptions) (*InProc, error) {
	if o.Dir == "" {
		return nil, errors.New("harness: InProcOptions.Dir is required")
	}
	if len(o.Origins) == 0 {
		o.Origins = []string{DefaultOrigin}
	}
	if o.PINTimeout <= 0 {
		o.PINTimeout = 30 * time.Second
	}
	vc := o.Card
	if vc == nil {
		cfg, err := virtual.Identity("medecin")
		if err != nil {
			return nil, err
		}
		if vc, err = virtual.NewCard(cfg); err != nil {
			return nil, err
		}
	}
	if o.Prompter == nil {
		o.Prompter = FixedPIN(vc.Config().PIN)
	}
	ca, _, err := localca.Ensure(filepath.Join(o.Dir, "tls"))
	if err != nil {
		return nil, err
	}
	mr := memreader.New(InProcReader)
	var inserted memreader.Card = vc
	if o.Wrap != nil {
		inserted = o.Wrap(vc)
	}
	if err := mr.Insert(InProcReader, inserted); err != nil {
		return nil, err
	}
	eng := card.New(mr, card.Options{Logger: o.Logger, NoPreRead: o.NoPreRead})
	srv, err := api.New(api.Options{AllowedOrigins: o.Origins, Version: "harness", PINTimeout: o.PINTimeout,
		Logger: o.Logger, DebugMetrics: true, ReadHeaderTimeout: o.ReadHeaderTimeout}, eng, o.Prompter)
	if err != nil {
		return nil, err
	}
	ln, err := api.Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &InProc{Server: srv, Engine: eng, Reader: mr, Card: vc, Addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	p.Base = "https://" + p.Addr
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(ctx) }()
	go func() {
		err := srv.Run(ctx, []net.Listener{ln}, ca.TLSConfig())
		<-engDone
		p.done <- err
	}()
	p.TLS = &tls.Config{RootCAs: poolOf(ca.CACertPEM())}
	p.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: p.TLS, MaxIdleConnsPerHost: 32}, Timeout: time.Minute}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := eng.Status()
		ready := false
		for _, r := range st.Readers {
			ready = ready || (r.Name == InProcReader && r.Card != nil && (r.Card.Serial != "" || o.NoPreRead))
		}
		if ready {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.Close()
			return nil, fmt.Errorf("harness: in-process agent did not read the card in 30 s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close stops the server and the engine.
func (p *InProc) Close() error {
	var err error
	p.once.Do(func() {
		p.cancel()
		select {
		case err = <-p.done:
		case <-time.After(30 * time.Second):
			err = errors.New("harness: in-process agent did not stop in 30 s")
		}
		p.Client.CloseIdleConnections()
	})
	return err
}

// FixedPIN is a Prompter that answers every PIN dialog with pin at once
// and confirms every consent.
type FixedPIN string

// GetPIN implements pinentry.Prompter.
func (f FixedPIN) GetPIN(ctx context.Context, _ pinentry.Request) (*pinentry.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return pinentry.SecretFromBytes([]byte(f)), nil
}

// Confirm implements pinentry.Prompter.
func (FixedPIN) Confirm(ctx context.Context, _ pinentry.ConfirmRequest) (pinentry.Decision, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return pinentry.AllowOnce, nil
}

var _ pinentry.Prompter = FixedPIN("")

func poolOf(pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}
