package demoportal

import (
	"crypto/x509"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/pkg/cpsverify"
)

// trustSource hands out the verifier to use. With trust files it reloads
// them when they change: `cpsagent serve --virtual-card` writes a new test
// PKI chain at each start, and the portal should not need a restart. The
// nonce store is shared by every verifier it builds, so a nonce issued
// before a reload is still accepted after it.
type trustSource struct {
	template *cpsverify.Verifier // policy fields; Roots/Intermediates replaced
	files    []string
	log      *zap.Logger

	mu      sync.Mutex
	current *cpsverify.Verifier
	stamps  []fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampsOf(files []string) []fileStamp {
	out := make([]fileStamp, len(files))
	for i, f := range files {
		if fi, err := os.Stat(f); err == nil {
			out[i] = fileStamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}

// newTrustSource loads files once (an error is fatal at start).
func newTrustSource(template *cpsverify.Verifier, files []string, log *zap.Logger) (*trustSource, error) {
	t := &trustSource{template: template, files: files, log: log}
	if len(files) == 0 {
		return t, nil
	}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *trustSource) reload() error {
	stamps := stampsOf(t.files)
	roots, inters, err := cpsverify.LoadTrust(t.files...)
	if err != nil {
		return err
	}
	t.current, t.stamps = withAnchors(t.template, roots, inters), stamps
	return nil
}

// withAnchors returns a verifier with tpl's policy and the given anchors.
// (Verifier holds a sync.Once and must not be copied; its exported fields
// are copied one by one.)
func withAnchors(tpl *cpsverify.Verifier, roots, inters *x509.CertPool) *cpsverify.Verifier {
	return &cpsverify.Verifier{
		Roots:            roots,
		Intermediates:    inters,
		Nonces:           tpl.Nonces,
		Now:              tpl.Now,
		AllowedOrigins:   tpl.AllowedOrigins,
		MaxNonceAge:      tpl.MaxNonceAge,
		AllowTestCards:   tpl.AllowTestCards,
		RequireTestCards: tpl.RequireTestCards,

		Revocation:         tpl.Revocation,
		RevocationSoftFail: tpl.RevocationSoftFail,
	}
}

// verifier returns the current verifier, reloading changed trust files
// first. A file that became unreadable keeps the previous anchors.
func (t *trustSource) verifier() *cpsverify.Verifier {
	if len(t.files) == 0 {
		return t.template
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := stampsOf(t.files)
	changed := false
	for i := range now {
		if now[i] != t.stamps[i] {
			changed = true
		}
	}
	if changed {
		if err := t.reload(); err != nil {
			t.log.Warn("trust files changed but do not load; keeping the previous anchors", zap.Error(err))
			t.stamps = now
		} else {
			t.log.Info("trust anchors reloaded")
		}
	}
	return t.current
}
