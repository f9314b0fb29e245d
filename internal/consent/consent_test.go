package consent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// scripted is a Confirmer whose dialogs stay open until the test answers.
type scripted struct {
	dialogs atomic.Int32
	mu      sync.Mutex
	origins []string
	answer  chan answer // one value per dialog
	opened  chan string // receives the origin of each dialog
}

type answer struct {
	d   pinentry.Decision
	err error
}

func newScripted() *scripted {
	return &scripted{answer: make(chan answer, 1), opened: make(chan string, 100)}
}

func (s *scripted) Confirm(ctx context.Context, c pinentry.ConfirmRequest) (pinentry.Decision, error) {
	s.dialogs.Add(1)
	s.mu.Lock()
	s.origins = append(s.origins, c.Origin)
	s.mu.Unlock()
	s.opened <- c.Origin
	select {
	case a := <-s.answer:
		return a.d, a.err
	case <-ctx.Done():
		return pinentry.Refuse, pinentry.ErrCancelled
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)} }

func newManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const site = "https://portail.example.fr"

func decideAsync(m *Manager, ctx context.Context, origin string) chan error {
	ch := make(chan error, 1)
	go func() {
		ok, err := m.Decide(ctx, origin)
		if ok != (err == nil) {
			err = errors.New("Decide returned allowed and an error together, or neither")
		}
		ch <- err
	}()
	return ch
}

func TestUnknownOriginOpensOneDialog(t *testing.T) {
	for _, tt := range []struct {
		name       string
		answer     answer
		allowed    bool
		reason     error
		persisted  bool
		askedAgain bool // a new request right after asks again (no grant, no cooldown)
	}{
		{"allow once", answer{pinentry.AllowOnce, nil}, true, nil, false, false},
		{"always", answer{pinentry.AllowAlways, nil}, true, nil, true, false},
		{"refuse", answer{pinentry.Refuse, nil}, false, ErrRefused, false, false},
		{"closed", answer{pinentry.Refuse, pinentry.ErrCancelled}, false, ErrRefused, false, false},
		{"pinentry timeout", answer{pinentry.Refuse, pinentry.ErrTimeout}, false, ErrTimeout, false, false},
		{"PIN dialog open", answer{pinentry.Refuse, pinentry.ErrBusy}, false, ErrDialogOpen, false, true},
		{"no pinentry", answer{pinentry.Refuse, pinentry.ErrUnavailable}, false, ErrNoPrompter, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newScripted()
			dir := t.TempDir()
			m := newManager(t, Config{StateDir: dir, Prompter: p})
			res := decideAsync(m, t.Context(), site)
			if got := <-p.opened; got != site {
				t.Fatalf("dialog for %q", got)
			}
			p.answer <- tt.answer
			err := <-res
			if (err == nil) != tt.allowed {
				t.Fatalf("Decide = %v, want allowed=%v", err, tt.allowed)
			}
			if err != nil && (!errors.Is(err, ErrNotAllowed) || !errors.Is(err, tt.reason)) {
				t.Fatalf("error %v, want ErrNotAllowed and %v", err, tt.reason)
			}
			_, statErr := os.Stat(filepath.Join(dir, StoreFile))
			if (statErr == nil) != tt.persisted {
				t.Errorf("store written = %v, want %v", statErr == nil, tt.persisted)
			}
			// A second request: allowed from the grant, refused from the
			// cooldown, or asked again; never a dialog for a decided origin.
			res = decideAsync(m, t.Context(), site)
			if tt.askedAgain {
				<-p.opened
				p.answer <- answer{pinentry.Refuse, nil}
				<-res
				if n := p.dialogs.Load(); n != 2 {
					t.Fatalf("%d dialogs, want 2", n)
				}
				return
			}
			err = <-res
			if (err == nil) != tt.allowed {
				t.Fatalf("second Decide = %v", err)
			}
			if !tt.allowed && !errors.Is(err, ErrRecentRefusal) {
				t.Fatalf("second Decide = %v, want the cooldown", err)
			}
			if n := p.dialogs.Load(); n != 1 {
				t.Fatalf("%d dialogs, want 1", n)
			}
		})
	}
}

func TestBurstOfTwentyOneDialog(t *testing.T) {
	p := newScripted()
	m := newManager(t, Config{StateDir: t.TempDir(), Prompter: p})
	all := make(chan struct{})
	m.testOnlyWaiting = func(_ string, n int) {
		if n == 20 {
			close(all)
		}
	}
	const n = 20
	results := make([]chan error, n)
	for i := range results {
		results[i] = decideAsync(m, t.Context(), site)
	}
	<-p.opened
	<-all // all 20 are waiting for the one dialog

	// Meanwhile another unknown origin is refused at once, with no dialog.
	other := "https://xn--caf-dma.example"
	if ok, err := m.Decide(t.Context(), other); ok || !errors.Is(err, ErrDialogOpen) {
		t.Fatalf("other origin during the dialog: %v, %v", ok, err)
	}
	// An origin that is already allowed is not blocked by the dialog.
	m2 := newManager(t, Config{Static: []string{"https://ok.example"}, Prompter: p})
	if ok, _ := m2.Decide(t.Context(), "https://ok.example"); !ok {
		t.Fatal("allowed origin refused")
	}

	p.answer <- answer{pinentry.AllowOnce, nil}
	for i, ch := range results {
		if err := <-ch; err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := p.dialogs.Load(); got != 1 {
		t.Fatalf("%d dialogs, want 1", got)
	}
}

func TestAlwaysSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	p := newScripted()
	m := newManager(t, Config{StateDir: dir, Prompter: p})
	res := decideAsync(m, t.Context(), "https://Portail.Example.FR:443")
	<-p.opened
	p.answer <- answer{pinentry.AllowAlways, nil}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v, want 0600", st.Mode().Perm())
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}

	// A new Manager on the same directory, with a prompter that must not be
	// called.
	p2 := newScripted()
	m2 := newManager(t, Config{StateDir: dir, Prompter: p2})
	if ok, err := m2.Decide(t.Context(), site); !ok {
		t.Fatalf("after restart: %v", err)
	}
	if src := m2.Lookup(site); src != SourceUser {
		t.Fatalf("source %q, want user", src)
	}
	if p2.dialogs.Load() != 0 {
		t.Fatal("dialog after restart")
	}
	sites := m2.Sites()
	if len(sites.User) != 1 || sites.User[0].Origin != site {
		t.Fatalf("Sites().User = %+v", sites.User)
	}

	// Revoke from the tray, then restart again: asked again.
	if err := m2.Revoke(site); err != nil {
		t.Fatal(err)
	}
	m3 := newManager(t, Config{StateDir: dir, Prompter: p2})
	res = decideAsync(m3, t.Context(), site)
	<-p2.opened
	p2.answer <- answer{pinentry.Refuse, nil}
	if err := <-res; !errors.Is(err, ErrRefused) {
		t.Fatalf("after revoke: %v", err)
	}
}

func TestOnceWindowExpires(t *testing.T) {
	clk := newClock()
	p := newScripted()
	m := newManager(t, Config{Prompter: p, Now: clk.Now, OnceWindow: time.Minute})
	res := decideAsync(m, t.Context(), site)
	<-p.opened
	p.answer <- answer{pinentry.AllowOnce, nil}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Second)
	if src := m.Lookup(site); src != SourceOnce {
		t.Fatalf("within the window: %q", src)
	}
	if got := m.Sites().Once; !slices.Equal(got, []string{site}) {
		t.Fatalf("Sites().Once = %v", got)
	}
	clk.Add(2 * time.Second)
	if src := m.Lookup(site); src != SourceNone {
		t.Fatalf("after the window: %q", src)
	}
	// Asked again.
	res = decideAsync(m, t.Context(), site)
	<-p.opened
	p.answer <- answer{pinentry.AllowOnce, nil}
	<-res
	if n := p.dialogs.Load(); n != 2 {
		t.Fatalf("%d dialogs, want 2", n)
	}
}

func TestCooldownExpires(t *testing.T) {
	clk := newClock()
	p := newScripted()
	m := newManager(t, Config{Prompter: p, Now: clk.Now, RefusalCooldown: 10 * time.Second})
	res := decideAsync(m, t.Context(), site)
	<-p.opened
	p.answer <- answer{pinentry.Refuse, nil}
	<-res
	if _, err := m.Decide(t.Context(), site); !errors.Is(err, ErrRecentRefusal) {
		t.Fatalf("during the cooldown: %v", err)
	}
	clk.Add(11 * time.Second)
	res = decideAsync(m, t.Context(), site)
	<-p.opened
	p.answer <- answer{pinentry.AllowOnce, nil}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

func TestDialogTimeoutRefuses(t *testing.T) {
	p := newScripted()
	m := newManager(t, Config{Prompter: p, DialogTimeout: 50 * time.Millisecond})
	ok, err := m.Decide(t.Context(), site)
	if ok || !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Decide = %v, %v; want a timeout refusal", ok, err)
	}
}

func TestAllWaitersGoneClosesDialog(t *testing.T) {
	p := newScripted()
	m := newManager(t, Config{Prompter: p})
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	joined := make(chan int, 2)
	m.testOnlyWaiting = func(_ string, n int) { joined <- n }
	ended := make(chan string, 1)
	m.testOnlyDialogEnded = func(o string) { ended <- o }
	r1 := decideAsync(m, ctx1, site)
	<-p.opened
	r2 := decideAsync(m, ctx2, site)
	<-joined
	<-joined
	cancel1()
	if err := <-r1; !errors.Is(err, ErrGone) || !errors.Is(err, context.Canceled) {
		t.Fatalf("first waiter: %v", err)
	}
	// The dialog is still open for the second waiter.
	if m.Lookup(site) != SourceNone {
		t.Fatal("decided early")
	}
	cancel2()
	if err := <-r2; !errors.Is(err, ErrGone) {
		t.Fatalf("second waiter: %v", err)
	}
	// The dialog's context was cancelled: the dialog ends by itself, long
	// before its 60 s timeout, and nothing was granted.
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("dialog not closed after every waiter left")
	}
	if m.Lookup(site) != SourceNone {
		t.Fatal("granted without an answer")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flight != nil {
		t.Fatal("flight still open")
	}
}

func TestPolicyBeatsUser(t *testing.T) {
	dir := t.TempDir()
	// The user chose "always" for two sites earlier.
	if err := saveStore(filepath.Join(dir, StoreFile), []Grant{{Origin: site}, {Origin: "https://autre.example"}}); err != nil {
		t.Fatal(err)
	}
	locked := false
	tests := []struct {
		name   string
		policy Policy
		static []string
		origin string
		want   Source
		reason error // when refused by Decide
	}{
		{"no policy, user list", Policy{}, nil, site, SourceUser, nil},
		{"policy denies a user origin", Policy{DeniedOrigins: []string{site}}, nil, site, SourceDenied, ErrPolicyDenied},
		{"policy denies a config origin", Policy{DeniedOrigins: []string{site}}, []string{site}, site, SourceDenied, ErrPolicyDenied},
		{"deny beats policy allow", Policy{DeniedOrigins: []string{site}, AllowedOrigins: []string{site}}, nil, site, SourceDenied, ErrPolicyDenied},
		{"locked: user list ignored", Policy{AllowUserAdditions: &locked}, nil, site, SourceNone, ErrPolicyLocked},
		{"locked: config ignored", Policy{AllowUserAdditions: &locked}, []string{"https://cfg.example"}, "https://cfg.example", SourceNone, ErrPolicyLocked},
		{"locked: unknown origin, no dialog", Policy{AllowUserAdditions: &locked}, nil, "https://new.example", SourceNone, ErrPolicyLocked},
		{"locked: policy origin allowed", Policy{AllowUserAdditions: &locked, AllowedOrigins: []string{"https://pol.example"}}, nil, "https://pol.example", SourcePolicy, nil},
		{"policy allow", Policy{AllowedOrigins: []string{"https://pol.example"}}, nil, "https://pol.example", SourcePolicy, nil},
		{"config allow", Policy{}, []string{"https://cfg.example"}, "https://cfg.example", SourceConfig, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newScripted()
			m := newManager(t, Config{StateDir: dir, Policy: tt.policy, Static: tt.static, Prompter: p})
			if got := m.Lookup(tt.origin); got != tt.want {
				t.Fatalf("Lookup = %q, want %q", got, tt.want)
			}
			ok, err := m.Decide(t.Context(), tt.origin)
			if ok != (tt.reason == nil) || tt.reason != nil && !errors.Is(err, tt.reason) {
				t.Fatalf("Decide = %v, %v; want reason %v", ok, err, tt.reason)
			}
			if p.dialogs.Load() != 0 {
				t.Fatal("a dialog was shown")
			}
		})
	}
	// A user choice made while the policy denies is impossible: a denied
	// origin never reaches the dialog, and the policy applied at run time
	// takes effect at once.
	p := newScripted()
	m := newManager(t, Config{StateDir: dir, Prompter: p})
	if ok, _ := m.Decide(t.Context(), site); !ok {
		t.Fatal("user origin refused without a policy")
	}
	m.SetPolicy(Policy{DeniedOrigins: []string{site}})
	if ok, err := m.Decide(t.Context(), site); ok || !errors.Is(err, ErrPolicyDenied) {
		t.Fatalf("after SetPolicy: %v, %v", ok, err)
	}
	if s := m.Sites(); s.UserAdditions != true || !slices.Equal(s.Denied, []string{site}) {
		t.Fatalf("Sites() = %+v", s)
	}
}

func TestNoPrompterRefuses(t *testing.T) {
	m := newManager(t, Config{})
	if ok, err := m.Decide(t.Context(), site); ok || !errors.Is(err, ErrNoPrompter) {
		t.Fatalf("Decide = %v, %v", ok, err)
	}
}

func TestInvalidOriginsRefused(t *testing.T) {
	p := newScripted()
	m := newManager(t, Config{Prompter: p})
	for _, o := range []string{"", "null", "https://x.fr/", "https://x.fr.", "file:///etc", "https://café.fr", "https://x.fr\n"} {
		if ok, err := m.Decide(t.Context(), o); ok || !errors.Is(err, ErrInvalidOrigin) || !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Decide(%q) = %v, %v", o, ok, err)
		}
	}
	if p.dialogs.Load() != 0 {
		t.Fatal("dialog for an invalid origin")
	}
	if _, err := New(Config{Static: []string{"https://ok.fr", "https://bad.fr/path"}}); !errors.Is(err, ErrInvalidOrigin) {
		t.Fatalf("New with a bad static entry: %v", err)
	}
}

func TestDamagedStoreIgnored(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StoreFile), []byte(`{"alwaysAllowed": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, Config{StateDir: dir})
	if len(m.Sites().User) != 0 {
		t.Fatal("damaged store used")
	}
	// Invalid entries in a readable store are dropped.
	data, _ := json.Marshal(storeFile{Version: 1, Always: []Grant{{Origin: "https://ok.fr"}, {Origin: "javascript:alert(1)"}, {Origin: "HTTPS://OK.FR"}}})
	if err := os.WriteFile(filepath.Join(dir, StoreFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	m = newManager(t, Config{StateDir: dir})
	if u := m.Sites().User; len(u) != 1 || u[0].Origin != "https://ok.fr" {
		t.Fatalf("User = %+v", u)
	}
}

func TestPolicyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "policy.json")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Missing file: no policy.
	p, err := LoadPolicy(filepath.Join(dir, "none.json"))
	if err != nil || p.Present || !p.UserAdditionsAllowed() {
		t.Fatalf("missing: %+v, %v", p, err)
	}
	p, err = LoadPolicy(write(`{"allowOrigins":["HTTPS://A.example:443","https://a.example"],"denyOrigins":["http://b.example:8080"],"allowUserOrigins":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Present || p.UserAdditionsAllowed() || !slices.Equal(p.AllowedOrigins, []string{"https://a.example"}) || !slices.Equal(p.DeniedOrigins, []string{"http://b.example:8080"}) {
		t.Fatalf("policy = %+v", p)
	}
	for _, bad := range []string{
		`{"allowOrigins":["https://a.example"],"allowUserOrigin":false}`, // typo
		`{"allowedOrigins":["https://a.example"]}`,                       // another product's key
		`{"allowOrigins":["https://a.example/"]}`,
		`not json`,
		`{} {}`,
		`{"allowUserOrigins":"no"}`,
	} {
		p, err := LoadPolicy(write(bad))
		if !errors.Is(err, ErrBadPolicy) {
			t.Errorf("%s: err = %v", bad, err)
		}
		if p.UserAdditionsAllowed() || len(p.AllowedOrigins) != 0 || !p.Present {
			t.Errorf("%s: not fail-closed: %+v", bad, p)
		}
	}
	if DefaultPolicyPath() == "" {
		t.Fatal("no default policy path")
	}
}

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://portail.example.fr", "https://portail.example.fr"},
		{"HTTPS://Portail.Example.FR", "https://portail.example.fr"},
		{"https://portail.example.fr:443", "https://portail.example.fr"},
		{"http://localhost:80", "http://localhost"},
		{"https://portail.example.fr:8443", "https://portail.example.fr:8443"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"https://[0:0:0:0:0:0:0:1]", "https://[::1]"},
		{"https://xn--caf-dma.example", "https://xn--caf-dma.example"},
		{"https://portail.example.fr/", ""},
		{"https://portail.example.fr.", ""},
		{"https://portail.example.fr:", ""},
		{"https://portail.example.fr:0443", ""},
		{"https://portail.example.fr:99999", ""},
		{"https://portail.example.fr?x", ""},
		{"https://portail.example.fr#x", ""},
		{"https://user@portail.example.fr", ""},
		{"https://café.example", ""},
		{"ftp://portail.example.fr", ""},
		{"null", ""},
		{"", ""},
		{" https://a.fr", ""},
		{"https://a..fr", ""},
		{"https://a_b.fr", ""},
		{"https://", ""},
		{"https:portail.example.fr", ""},
		{"//portail.example.fr", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeOrigin(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://a.fr", "HTTP://[::1]:80", "https://xn--caf-dma.example:8443", "https://a.fr/", "null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeOrigin(s)
		if err != nil {
			return
		}
		// Idempotent, and an origin with no path/space/upper case.
		n2, err := NormalizeOrigin(n)
		if err != nil || n2 != n {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, n, n2, err)
		}
		if strings.ContainsAny(n, " /?#@") && !strings.HasPrefix(n, "http") || strings.Count(n, "/") != 2 || strings.ToLower(n) != n {
			t.Fatalf("bad normal form %q", n)
		}
	})
}

// TestOnChange: the tray refreshes its site list on OnChange instead of
// polling, so every change Sites can show must call it: always, once (and
// the once grant's expiry), revoke, a new policy; a refusal must not.
func TestOnChange(t *testing.T) {
	p := newScripted()
	m := newManager(t, Config{StateDir: t.TempDir(), Prompter: p, OnceWindow: 150 * time.Millisecond, RefusalCooldown: -1})
	calls := make(chan struct{}, 16)
	m.OnChange(func() { calls <- struct{}{} })
	expectCall := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: OnChange not called", what)
		}
	}
	noCall := func(what string) {
		t.Helper()
		select {
		case <-calls:
			t.Fatalf("%s: OnChange called", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
	decide := func(origin string, a answer) {
		t.Helper()
		res := decideAsync(m, t.Context(), origin)
		<-p.opened
		p.answer <- a
		<-res
	}
	decide("https://refused.example.fr", answer{pinentry.Refuse, nil})
	noCall("refusal")
	decide(site, answer{pinentry.AllowAlways, nil})
	expectCall("always")
	if err := m.Revoke(site); err != nil {
		t.Fatal(err)
	}
	expectCall("revoke")
	decide("https://once.example.fr", answer{pinentry.AllowOnce, nil})
	expectCall("once")
	expectCall("once expired")
	m.SetPolicy(Policy{AllowedOrigins: []string{"https://policy.example.fr"}})
	expectCall("policy")
}
