// Package doctor explains, in French and English, why a portal cannot use
// the card: it checks the smart-card service, readers and cards, whether
// another program holds the card, whether the agent's port is served by this
// agent, the TLS certificate, and the configuration and machine policy in
// force. It backs `cpsagent doctor` and the tray's Diagnostics item, and can
// write a redacted support bundle (see WriteBundle).
package doctor

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/i18n"
)

// Status of a check.
type Status string

// Statuses, from best to worst.
const (
	OK   Status = "ok"
	Skip Status = "skip" // not applicable or not wired
	Warn Status = "warn"
	Fail Status = "fail"
)

// Msg is a catalogue text with its arguments, rendered in either language.
type Msg struct {
	Key  i18n.Key
	Args []any
}

// In renders m in lang ("" when m is empty).
func (m Msg) In(lang i18n.Lang) string {
	if m.Key == "" {
		return ""
	}
	return i18n.T(lang, m.Key, m.Args...)
}

func msg(k i18n.Key, args ...any) Msg { return Msg{Key: k, Args: args} }

// Check is the result of one check.
type Check struct {
	ID     string
	Status Status
	Title  Msg
	Detail Msg
	Hint   Msg // what to do, when not OK
	// Facts are language-neutral details (names, paths, dates); they may
	// contain serial numbers, which the bundle masks.
	Facts []string
}

// Report is the result of Run.
type Report struct {
	Time    time.Time
	Version string
	OS      string
	Checks  []Check
}

// Worst returns the worst status of the report.
func (r Report) Worst() Status {
	rank := map[Status]int{OK: 0, Skip: 0, Warn: 1, Fail: 2}
	w := OK
	for _, c := range r.Checks {
		if rank[c.Status] > rank[w] {
			w = c.Status
		}
	}
	return w
}

// Deps gives the doctor what it checks. Zero fields skip their checks.
type Deps struct {
	Version string
	// Readers lists readers and cards (card.Engine.Readers over a PC/SC
	// transport).
	Readers func(ctx context.Context) ([]card.Reader, error)
	// Begin opens a session on a reader's card (card.Transport.Begin of the
	// PC/SC transport), to see whether another program holds it.
	Begin func(ctx context.Context, reader string) (card.Session, error)
	// AgentURL is the agent's base URL (default https://127.0.0.1:47180).
	AgentURL string
	// TLSDir holds the agent's ca.pem and cert.pem (<state>/tls).
	TLSDir string
	// ConfigFile is the configuration file read ("" for none), ConfigErr the
	// error loading it, AllowOrigins the allow-list in force.
	ConfigFile   string
	ConfigErr    error
	AllowOrigins []string
	// PolicyPath is the machine policy file (consent.DefaultPolicyPath()).
	PolicyPath string
	// QuirksPath is the administrator's card quirks file
	// (config.QuirksFile()); "" skips the check.
	QuirksPath string
	// StateDir holds consent.json and the ledger.
	StateDir string
	// LogDir holds the agent's logs (for the bundle).
	LogDir string
	// Pinentry is the configured pinentry program ("" for the default).
	Pinentry string
	// BrowserPolicyRoot is the file-system root under which the browsers'
	// Linux machine policies are read ("/"); "" skips the check.
	BrowserPolicyRoot string
	// Getenv reads the environment (tests); nil: os.Getenv.
	Getenv func(string) string
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// PortOwner names the process listening on a local TCP port ("" when
	// unknown). Default: portOwner (Linux /proc; elsewhere unknown).
	PortOwner func(port int) string
}

// Run performs every check. It never fails: problems are in the report.
func Run(ctx context.Context, d Deps) Report {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.PortOwner == nil {
		d.PortOwner = portOwner
	}
	r := Report{Time: d.Now(), Version: d.Version, OS: runtime.GOOS + "/" + runtime.GOARCH}
	r.Checks = append(r.Checks, checkCards(ctx, d)...)
	r.Checks = append(r.Checks, checkAgent(ctx, d))
	r.Checks = append(r.Checks, checkTLS(d))
	r.Checks = append(r.Checks, checkConfig(d), checkPolicy(d), checkQuirks(d), checkPinentry(d))
	r.Checks = append(r.Checks, checkBrowserPolicies(d, runtime.GOOS))
	return r
}

// WriteText writes the report in lang, human readable.
func (r Report) WriteText(w interface{ Write([]byte) (int, error) }, lang i18n.Lang) error {
	p := i18n.For(lang)
	var err error
	pf := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	pf("%s\n", p.T(i18n.DoctorHeader, r.Version, r.OS, r.Time.Format("2006-01-02 15:04:05 MST")))
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		pf("\n[%s] %s\n", p.T(statusKey(c.Status)), c.Title.In(lang))
		if s := c.Detail.In(lang); s != "" {
			pf("    %s\n", s)
		}
		for _, f := range c.Facts {
			pf("    - %s\n", f)
		}
		if s := c.Hint.In(lang); s != "" && c.Status != OK {
			pf("    → %s\n", s)
		}
	}
	pf("\n%s\n", p.T(i18n.DoctorSummary, counts[OK], counts[Warn], counts[Fail], counts[Skip]))
	return err
}

func statusKey(s Status) i18n.Key {
	switch s {
	case OK:
		return i18n.DoctorOK
	case Warn:
		return i18n.DoctorWarn
	case Fail:
		return i18n.DoctorFail
	default:
		return i18n.DoctorSkip
	}
}

// JSON form of a report (report.json in the bundle, `doctor --json`).
type jsonText struct {
	FR string `json:"fr,omitempty"`
	EN string `json:"en,omitempty"`
}

type jsonCheck struct {
	ID     string   `json:"id"`
	Status Status   `json:"status"`
	Title  jsonText `json:"title"`
	Detail jsonText `json:"detail"`
	Hint   jsonText `json:"hint"`
	Facts  []string `json:"facts,omitempty"`
}

type jsonReport struct {
	Time    time.Time   `json:"time"`
	Version string      `json:"version"`
	OS      string      `json:"os"`
	Worst   Status      `json:"worst"`
	Checks  []jsonCheck `json:"checks"`
}

func both(m Msg) jsonText { return jsonText{FR: m.In(i18n.FR), EN: m.In(i18n.EN)} }

// JSON returns the report as a JSON-ready value, with both languages.
func (r Report) JSON() any {
	out := jsonReport{Time: r.Time.UTC(), Version: r.Version, OS: r.OS, Worst: r.Worst()}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, jsonCheck{ID: c.ID, Status: c.Status, Title: both(c.Title),
			Detail: both(c.Detail), Hint: both(c.Hint), Facts: c.Facts})
	}
	return out
}
