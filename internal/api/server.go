package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/netutil"

	"github.com/cpsagent/cpsagent/internal/logging"
)

// Server limits against slow or greedy local clients (security.md §3.10).
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second // a 16 MiB body on loopback takes milliseconds
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
	MaxConns          = 128 // per listener
	ShutdownTimeout   = 10 * time.Second
)

// WriteTimeout is sized for a whole card operation: the PIN prompt, the
// card, and the answer.
func (s *Server) WriteTimeout() time.Duration { return s.opts.PINTimeout + cardMargin + 10*time.Second }

// Run serves HTTPS on the listeners until ctx is done, then shuts down
// gracefully: operations in flight are stopped (their PIN prompt is killed
// and they answer agent_shutting_down), event streams are closed with 1001,
// and Run waits for them (at most ShutdownTimeout) before returning.
// HTTP/2 is disabled (WebSockets need HTTP/1.1 upgrades, and a loopback
// agent gains nothing from h2's extra attack surface).
func (s *Server) Run(ctx context.Context, lns []net.Listener, tlsConfig *tls.Config) error {
	if tlsConfig == nil {
		return errors.New("api: a TLS configuration is required (HTTPS only)")
	}
	for _, ln := range lns {
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
			if err := s.AllowPort(tcp.Port); err != nil {
				return err
			}
		}
	}
	cfg := tlsConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.NextProtos = []string{"http/1.1"}

	rht := s.opts.ReadHeaderTimeout
	if rht <= 0 {
		rht = ReadHeaderTimeout
	}
	errLog, _ := zap.NewStdLogAt(s.log.Named("http"), zapcore.DebugLevel)
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         cfg,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: rht,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      s.WriteTimeout(),
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errLog,
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
	}

	errc := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.log.Info("listening", logging.Addr("https://"+hostPort(ln.Addr())))
			if err := srv.ServeTLS(netutil.LimitListener(ln, MaxConns), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down")
	s.baseCancel(errShuttingDown)
	shCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		s.log.Warn("shutdown incomplete", logging.Err(err))
		_ = srv.Close()
	}
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-shCtx.Done():
		s.log.Warn("handlers still running after the shutdown timeout")
	}
	wg.Wait()
	return runErr
}

func hostPort(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return net.JoinHostPort(tcp.IP.String(), strconv.Itoa(tcp.Port))
	}
	return a.String()
}

// Close stops operations in flight and event streams without serving
// (for servers used through Handler only, such as tests).
func (s *Server) Close() { s.baseCancel(errShuttingDown) }
