package virtual

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

// Ready-made identities come from pkg/cpsid/cpstest: one test PKI per
// process and, per identity, two RSA-2048 keys and two certificates. Key
// generation is slow (about 0.1 s per key, much more under -race), so each
// identity is built once per process and cached; tests can build many cards
// from it for free. Use a state file (Config.StateFile) to keep one identity
// across runs.

// identitySerials gives each ready-made identity a fixed card number.
var identitySerials = map[string]string{
	"medecin":   "9921384501",
	"infirmier": "9921384602",
	"cpe":       "9921384703",
}

type cachedIdentity struct {
	once sync.Once
	cfg  Config
	err  error
}

var (
	pkiOnce    sync.Once
	pki        *cpstest.PKI
	pkiErr     error
	identityMu sync.Mutex
	identities = map[string]*cachedIdentity{}
)

// Identities lists the names Identity accepts ("cpe", "infirmier",
// "medecin").
func Identities() []string {
	holders := cpstest.Holders()
	names := make([]string, 0, len(holders))
	for n := range holders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IdentityPKI returns the process-wide test PKI that issues the identities'
// certificates (to verify chains in tests).
func IdentityPKI() (*cpstest.PKI, error) {
	pkiOnce.Do(func() {
		pki, pkiErr = cpstest.NewPKI(rand.Reader)
	})
	return pki, pkiErr
}

// Identity returns a ready card configuration for a cpstest holder: its
// keys, certificates (valid from 30 days ago for 3 years), serial number and
// the default PIN and PUK. The keys are generated once per process.
func Identity(name string) (Config, error) {
	holder, ok := cpstest.Holders()[name]
	if !ok {
		return Config{}, fmt.Errorf("%w: unknown identity %q (have %v)", ErrConfig, name, Identities())
	}
	identityMu.Lock()
	ci := identities[name]
	if ci == nil {
		ci = &cachedIdentity{}
		identities[name] = ci
	}
	identityMu.Unlock()
	ci.once.Do(func() { ci.cfg, ci.err = buildIdentity(name, holder) })
	if ci.err != nil {
		return Config{}, ci.err
	}
	cfg := ci.cfg
	cfg.SignCert = append([]byte(nil), cfg.SignCert...)
	cfg.AuthCert = append([]byte(nil), cfg.AuthCert...)
	return cfg, nil
}

func buildIdentity(name string, h cpstest.Holder) (Config, error) {
	p, err := IdentityPKI()
	if err != nil {
		return Config{}, fmt.Errorf("virtual: creating the test PKI: %w", err)
	}
	var signKey, authKey *rsa.PrivateKey
	var wg sync.WaitGroup
	var errSign, errAuth error
	wg.Add(2)
	go func() { defer wg.Done(); signKey, errSign = rsa.GenerateKey(rand.Reader, 2048) }()
	go func() { defer wg.Done(); authKey, errAuth = rsa.GenerateKey(rand.Reader, 2048) }()
	wg.Wait()
	if errSign != nil || errAuth != nil {
		return Config{}, fmt.Errorf("virtual: generating keys for %s: %w %w", name, errSign, errAuth)
	}
	nb := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
	authCert, signCert, err := p.Issue(h, &authKey.PublicKey, &signKey.PublicKey, nb, nb.AddDate(3, 0, 0))
	if err != nil {
		return Config{}, fmt.Errorf("virtual: issuing certificates for %s: %w", name, err)
	}
	serial := identitySerials[name]
	if serial == "" {
		serial = fmt.Sprintf("99213846%02d", len(name)%100)
	}
	return Config{
		Serial:   serial,
		Holder:   name,
		SignKey:  signKey,
		AuthKey:  authKey,
		SignCert: signCert.Raw,
		AuthCert: authCert.Raw,
		PIN:      DefaultPIN,
		PUK:      DefaultPUK,
	}, nil
}
