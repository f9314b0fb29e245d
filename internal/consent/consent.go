// Package consent decides whether a web origin may use the agent, asking the
// card holder when the origin is not known yet.
//
// # Lists, strongest first
//
//  1. The machine policy (see [Policy]): its denyOrigins are refused, always,
//     without a dialog; its allowOrigins are allowed.
//  2. When the policy forbids user additions, nothing else counts: every other
//     origin is refused without a dialog.
//  3. The static allow-list (the user's configuration file and --allow-origin).
//  4. The user's "always allow" list, kept in the state directory
//     (consent.json, written atomically, mode 0600), editable from the tray.
//  5. "Allow once" grants, held in memory only.
//
// # The dialog
//
// Any other origin opens one consent dialog through the [Confirmer]
// (pinentry's three-button CONFIRM: allow once, always allow, refuse) naming
// the origin exactly; pinentry shows an internationalised host decoded and
// raw. At most one dialog is open at a time:
//
//   - requests from the origin being asked about wait for the same dialog and
//     all get its answer (a burst of 20 requests opens one dialog);
//   - a request from any other unknown origin while a dialog is open is
//     refused at once ([ErrDialogOpen]); dialogs are never stacked;
//   - when every request waiting for a dialog has gone (the browser closed the
//     connection), the dialog is closed;
//   - no answer within Config.DialogTimeout (60 s) is a refusal.
//
// "Allow once" lets the origin use the agent for Config.OnceWindow (5
// minutes) from the answer: long enough for the preflight, the request that
// asked and the few that follow it in one portal operation (status, card,
// authenticate, sign), short enough that a later visit asks again. It is
// kept in memory only and dropped when the agent restarts.
//
// After a refusal (button, timeout, closed dialog) the origin is refused
// without a dialog for Config.RefusalCooldown (30 s), so that a page cannot
// reopen the dialog in a loop.
//
// Every refusal returned by [Manager.Decide] matches [ErrNotAllowed]; the API
// answers all of them with 403 origin_not_allowed and touches nothing.
package consent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// Confirmer shows the consent dialog. *pinentry.Client implements it.
type Confirmer interface {
	Confirm(ctx context.Context, c pinentry.ConfirmRequest) (pinentry.Decision, error)
}

// Defaults of Config.
const (
	DefaultDialogTimeout   = 60 * time.Second
	DefaultOnceWindow      = 5 * time.Minute
	DefaultRefusalCooldown = 30 * time.Second
)

// Config configures a Manager.
type Config struct {
	// StateDir holds consent.json, the user's "always allow" list.
	StateDir string
	// Static is the allow-list from the user's configuration and
	// --allow-origin. Entries are normalised; an invalid one fails New.
	Static []string
	// Policy is the machine policy (LoadPolicy(DefaultPolicyPath())).
	Policy Policy
	// Prompter shows the dialog. Nil: unknown origins are refused without a
	// dialog.
	Prompter Confirmer
	// Lang of the dialog.
	Lang i18n.Lang
	// DialogTimeout, OnceWindow and RefusalCooldown: see the package
	// documentation. Zero selects the default; a negative RefusalCooldown
	// disables the cooldown.
	DialogTimeout   time.Duration
	OnceWindow      time.Duration
	RefusalCooldown time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// Logger receives decisions (origin, source, outcome). Nil: none.
	Logger *zap.Logger
}

// Refusal reasons. Each error returned by Decide matches ErrNotAllowed and
// one of the others.
var (
	ErrNotAllowed    = errors.New("consent: origin not allowed")
	ErrPolicyDenied  = errors.New("denied by the machine policy")
	ErrPolicyLocked  = errors.New("the machine policy allows no other origin")
	ErrRefused       = errors.New("refused by the user")
	ErrRecentRefusal = errors.New("refused by the user a moment ago")
	ErrTimeout       = errors.New("no answer in time")
	ErrDialogOpen    = errors.New("another consent dialog is open")
	ErrNoPrompter    = errors.New("no consent dialog available")
	ErrGone          = errors.New("the request went away before the answer")
)

func refusal(reason error) error { return fmt.Errorf("%w: %w", ErrNotAllowed, reason) }

// Source tells why an origin is allowed.
type Source string

// Sources of an allowed origin; SourceNone means not allowed (yet).
const (
	SourceNone   Source = ""
	SourcePolicy Source = "policy"
	SourceConfig Source = "config"
	SourceUser   Source = "user"
	SourceOnce   Source = "once"
	SourceDenied Source = "denied" // denied by the policy
)

// Manager answers consent questions. It is safe for concurrent use.
type Manager struct {
	cfg       Config
	storePath string
	log       *zap.Logger

	mu       sync.Mutex
	policy   Policy
	static   []string
	user     []Grant
	once     map[string]time.Time // origin → end of the window
	cooldown map[string]time.Time // origin → end of the cooldown
	flight   *flight
	onChange atomic.Pointer[func()]

	testOnlyDialogStarted func(origin string)              // called when a dialog starts
	testOnlyWaiting       func(origin string, waiters int) // called when a request starts waiting for a dialog
	testOnlyDialogEnded   func(origin string)              // called when a dialog's answer is recorded
}

type flight struct {
	origin  string
	waiters int
	cancel  context.CancelFunc
	done    chan struct{}
	allowed bool
	err     error
}

// New returns a Manager, reading the user's list from cfg.StateDir. A damaged
// list is logged and treated as empty.
func New(cfg Config) (*Manager, error) {
	if cfg.DialogTimeout <= 0 {
		cfg.DialogTimeout = DefaultDialogTimeout
	}
	if cfg.OnceWindow <= 0 {
		cfg.OnceWindow = DefaultOnceWindow
	}
	if cfg.RefusalCooldown == 0 {
		cfg.RefusalCooldown = DefaultRefusalCooldown
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	static, err := normalizeAll(cfg.Static)
	if err != nil {
		return nil, fmt.Errorf("consent: allow-list: %w", err)
	}
	m := &Manager{
		cfg:      cfg,
		log:      log.Named("consent"),
		policy:   cfg.Policy,
		static:   static,
		once:     map[string]time.Time{},
		cooldown: map[string]time.Time{},
	}
	if cfg.StateDir != "" {
		m.storePath = filepath.Join(cfg.StateDir, StoreFile)
		user, err := loadStore(m.storePath)
		if err != nil {
			m.log.Warn("user consent list unusable", zap.Error(err))
		}
		m.user = user
	}
	return m, nil
}

// OnChange registers f, called (without blocking, from any goroutine) each
// time Sites may answer differently: a site added or removed, an "allow
// once" grant given or expired, a new policy. The tray refreshes its menu
// on it instead of polling.
func (m *Manager) OnChange(f func()) { m.onChange.Store(&f) }

func (m *Manager) changed() {
	if f := m.onChange.Load(); f != nil && *f != nil {
		(*f)()
	}
}

// SetPolicy replaces the machine policy (after the file changed).
func (m *Manager) SetPolicy(p Policy) {
	defer m.changed()
	m.mu.Lock()
	m.policy = p
	m.mu.Unlock()
}

// Lookup says whether origin is allowed now, without ever opening a dialog.
// An invalid origin is SourceNone.
func (m *Manager) Lookup(origin string) Source {
	o, err := NormalizeOrigin(origin)
	if err != nil {
		return SourceNone
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookupLocked(o)
}

func (m *Manager) lookupLocked(o string) Source {
	p := m.policy
	switch {
	case slices.Contains(p.DeniedOrigins, o):
		return SourceDenied
	case slices.Contains(p.AllowedOrigins, o):
		return SourcePolicy
	case !p.UserAdditionsAllowed():
		return SourceNone
	case slices.Contains(m.static, o):
		return SourceConfig
	case slices.ContainsFunc(m.user, func(g Grant) bool { return g.Origin == o }):
		return SourceUser
	}
	if until, ok := m.once[o]; ok {
		if m.cfg.Now().Before(until) {
			return SourceOnce
		}
		delete(m.once, o)
	}
	return SourceNone
}

// Decide reports whether origin may use the agent, asking the user when
// needed (see the package documentation). It returns (true, nil) when the
// origin is allowed, else false and an error matching ErrNotAllowed and the
// reason. It blocks while a dialog about this origin is open, until the
// answer or ctx is done.
func (m *Manager) Decide(ctx context.Context, origin string) (bool, error) {
	o, err := NormalizeOrigin(origin)
	if err != nil {
		return false, refusal(err)
	}
	m.mu.Lock()
	switch src := m.lookupLocked(o); src {
	case SourceDenied:
		m.mu.Unlock()
		return false, refusal(ErrPolicyDenied)
	case SourceNone:
	default:
		m.mu.Unlock()
		return true, nil
	}
	if !m.policy.UserAdditionsAllowed() {
		m.mu.Unlock()
		return false, refusal(ErrPolicyLocked)
	}
	if until, ok := m.cooldown[o]; ok {
		if m.cfg.Now().Before(until) {
			m.mu.Unlock()
			return false, refusal(ErrRecentRefusal)
		}
		delete(m.cooldown, o)
	}
	if m.cfg.Prompter == nil {
		m.mu.Unlock()
		return false, refusal(ErrNoPrompter)
	}
	f := m.flight
	switch {
	case f != nil && f.origin != o:
		m.mu.Unlock()
		m.log.Info("consent refused: another dialog is open", zap.String("origin", o))
		return false, refusal(ErrDialogOpen)
	case f == nil:
		f = m.startLocked(o)
	}
	f.waiters++
	if m.testOnlyWaiting != nil {
		m.testOnlyWaiting(o, f.waiters)
	}
	m.mu.Unlock()

	select {
	case <-f.done:
		return f.allowed, f.err
	case <-ctx.Done():
		m.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel() // nobody is waiting for the answer any more: close the dialog
		}
		m.mu.Unlock()
		return false, refusal(fmt.Errorf("%w: %w", ErrGone, ctx.Err()))
	}
}

// startLocked opens the dialog for o in its own goroutine. Called with m.mu
// held.
func (m *Manager) startLocked(o string) *flight {
	dctx, cancel := context.WithTimeout(context.Background(), m.cfg.DialogTimeout)
	f := &flight{origin: o, cancel: cancel, done: make(chan struct{})}
	m.flight = f
	if m.testOnlyDialogStarted != nil {
		m.testOnlyDialogStarted(o)
	}
	go func() {
		defer cancel()
		started := m.cfg.Now()
		d, err := m.cfg.Prompter.Confirm(dctx, pinentry.ConfirmRequest{
			Origin:    o,
			Operation: i18n.T(m.cfg.Lang, i18n.ConsentOperation),
			Timeout:   m.cfg.DialogTimeout,
			Lang:      m.cfg.Lang.Code(),
		})
		m.finish(f, d, err, dctx.Err())
		m.log.Info("consent dialog answered", zap.String("origin", o), zap.Stringer("decision", d),
			zap.Duration("after", m.cfg.Now().Sub(started)), zap.NamedError("reason", f.err))
	}()
	return f
}

// finish records the answer and wakes the waiters.
func (m *Manager) finish(f *flight, d pinentry.Decision, err, dctxErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	cooldown := true
	switch {
	case err == nil && d == pinentry.AllowOnce:
		m.once[f.origin] = now.Add(m.cfg.OnceWindow)
		f.allowed = true
		go m.changed()
		time.AfterFunc(m.cfg.OnceWindow, m.changed) // the grant leaves the menu
	case err == nil && d == pinentry.AllowAlways:
		f.allowed = true
		go m.changed()
		if !slices.ContainsFunc(m.user, func(g Grant) bool { return g.Origin == f.origin }) {
			user := append(slices.Clone(m.user), Grant{Origin: f.origin, Added: now.UTC()})
			if serr := m.saveLocked(user); serr != nil {
				// Still allowed this time; it will be asked again later.
				m.log.Error("saving the always-allowed list", zap.Error(serr))
				m.once[f.origin] = now.Add(m.cfg.OnceWindow)
			}
		}
	case err == nil:
		f.err = refusal(ErrRefused)
	case errors.Is(dctxErr, context.DeadlineExceeded) || errors.Is(err, pinentry.ErrTimeout):
		f.err = refusal(fmt.Errorf("%w: %w", ErrTimeout, err))
	case errors.Is(dctxErr, context.Canceled):
		f.err = refusal(fmt.Errorf("%w: %w", ErrGone, err))
	case errors.Is(err, pinentry.ErrCancelled):
		f.err = refusal(fmt.Errorf("%w: %w", ErrRefused, err))
	case errors.Is(err, pinentry.ErrBusy):
		// A PIN dialog is open: not the user's answer, no cooldown.
		f.err = refusal(fmt.Errorf("%w: %w", ErrDialogOpen, err))
		cooldown = false
	default:
		f.err = refusal(fmt.Errorf("%w: %w", ErrNoPrompter, err))
		cooldown = false
	}
	if !f.allowed && cooldown && m.cfg.RefusalCooldown > 0 {
		m.cooldown[f.origin] = now.Add(m.cfg.RefusalCooldown)
	}
	m.flight = nil
	close(f.done)
	if m.testOnlyDialogEnded != nil {
		m.testOnlyDialogEnded(f.origin)
	}
}

// saveLocked persists user and, on success, makes it the current list.
func (m *Manager) saveLocked(user []Grant) error {
	if m.storePath == "" {
		return errors.New("consent: no state directory")
	}
	if err := saveStore(m.storePath, user); err != nil {
		return err
	}
	m.user = user
	return nil
}

// Sites is what the tray shows about allowed origins.
type Sites struct {
	Policy        []string // allowed by the machine policy (not removable)
	Denied        []string // denied by the machine policy
	Config        []string // the configuration allow-list (edited in the file)
	User          []Grant  // "always allow" answers (removable from the tray)
	Once          []string // current "allow once" grants
	UserAdditions bool     // false when the policy forbids user additions
	PolicyPath    string
	PolicyPresent bool
}

// Sites returns the lists in force.
func (m *Manager) Sites() Sites {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Sites{
		Policy:        slices.Clone(m.policy.AllowedOrigins),
		Denied:        slices.Clone(m.policy.DeniedOrigins),
		Config:        slices.Clone(m.static),
		User:          slices.Clone(m.user),
		UserAdditions: m.policy.UserAdditionsAllowed(),
		PolicyPath:    m.policy.Path,
		PolicyPresent: m.policy.Present,
	}
	now := m.cfg.Now()
	for o, until := range m.once {
		if now.Before(until) {
			s.Once = append(s.Once, o)
		}
	}
	slices.Sort(s.Once)
	return s
}

// Revoke removes origin from the user's "always allow" list and forgets any
// "allow once" grant for it. Removing an origin that is not there is not an
// error.
func (m *Manager) Revoke(origin string) error {
	o, err := NormalizeOrigin(origin)
	if err != nil {
		return err
	}
	defer m.changed()
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.once, o)
	i := slices.IndexFunc(m.user, func(g Grant) bool { return g.Origin == o })
	if i < 0 {
		return nil
	}
	return m.saveLocked(slices.Delete(slices.Clone(m.user), i, i+1))
}
