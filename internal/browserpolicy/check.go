package browserpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cpsagent/cpsagent/internal/atomicfile"
)

// A Browser is a browser whose Linux machine policies this package reads and
// writes. Paths are absolute; Check and Write put them under a root.
type Browser struct {
	ID   string // chrome, chromium, edge, firefox
	Name string
	// Dir is the managed-policy directory (Chrome family) or the directory
	// of policies.json (Firefox).
	Dir string
	// Installed lists paths of which any one shows the browser is
	// installed even when Dir does not exist yet.
	Installed []string
	Firefox   bool
}

// Browsers are the Linux browsers, in report order. Edge's directory is the
// one Microsoft's Linux packages read (/etc/opt/edge/policies/managed).
// Snap packages of Chromium are not covered (they read their own directory).
var Browsers = []Browser{
	{ID: "chrome", Name: "Google Chrome", Dir: "/etc/opt/chrome/policies/managed", Installed: []string{"/opt/google/chrome"}},
	{ID: "chromium", Name: "Chromium", Dir: "/etc/chromium/policies/managed", Installed: []string{"/usr/lib/chromium", "/usr/lib64/chromium-browser", "/usr/bin/chromium"}},
	{ID: "edge", Name: "Microsoft Edge", Dir: "/etc/opt/edge/policies/managed", Installed: []string{"/opt/microsoft/msedge"}},
	{ID: "firefox", Name: "Firefox", Dir: "/etc/firefox/policies", Firefox: true,
		Installed: []string{"/usr/lib/firefox", "/usr/lib64/firefox", "/usr/lib/firefox-esr", "/usr/bin/firefox", "/usr/bin/firefox-esr", "/opt/firefox", "/snap/bin/firefox"}},
}

// ChromeFileName is the file Write puts in each Chrome-family managed
// directory; FirefoxFileName is Firefox's one policies file.
const (
	ChromeFileName  = "cpsagent.json"
	FirefoxFileName = "policies.json"
)

// Status is what Check found for one browser.
type Status struct {
	Browser Browser
	// Path is the directory (Chrome family) or policies.json (Firefox),
	// under the root.
	Path string
	// Checked is false when the browser is not installed (no policy
	// directory and no installation found).
	Checked bool
	// Allowed are the origins the browser's policies pre-allow, Missing
	// the others.
	Allowed, Missing []string
	// Problems are files that could not be read or parsed.
	Problems []string
}

// Report is the result of Check.
type Report struct{ Browsers []Status }

// Missing reports whether an installed browser lacks an origin.
func (r Report) Missing() bool {
	for _, b := range r.Browsers {
		if b.Checked && len(b.Missing) > 0 {
			return true
		}
	}
	return false
}

// Checked returns how many browsers were checked.
func (r Report) Checked() int {
	n := 0
	for _, b := range r.Browsers {
		if b.Checked {
			n++
		}
	}
	return n
}

// Facts describes the report in one line per browser (English, for logs
// and the doctor).
func (r Report) Facts() []string {
	var out []string
	for _, b := range r.Browsers {
		s := b.Browser.Name + " (" + b.Path + "): "
		switch {
		case !b.Checked:
			s += "not installed, not checked"
		case len(b.Missing) == 0:
			s += "all origins pre-allowed"
		default:
			s += "missing " + strings.Join(b.Missing, ", ")
		}
		out = append(out, s)
		for _, p := range b.Problems {
			out = append(out, b.Browser.Name+": "+p)
		}
	}
	return out
}

// under joins root and an absolute path.
func under(root, path string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.FromSlash(path))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// installed reports whether b is installed under root (or its policy
// directory exists).
func installed(root string, b Browser) bool {
	if exists(under(root, b.Dir)) {
		return true
	}
	for _, p := range b.Installed {
		if exists(under(root, p)) {
			return true
		}
	}
	return false
}

// Check reads the Linux machine policies of each browser under root ("/"
// on a real system) and reports which origins they pre-allow. A browser
// that is not installed (neither its policy directory nor its program
// exists) is not checked. Chrome, Chromium and Edge read every file of their
// managed directory, and for a policy set in several files the last file
// in name order wins: Check does the same. err reports invalid origins
// (the valid ones are still checked).
func Check(root string, origins []string) (Report, error) {
	want, err := Normalize(origins)
	var r Report
	for _, b := range Browsers {
		st := Status{Browser: b, Path: under(root, b.Dir)}
		if b.Firefox {
			st.Path = filepath.Join(st.Path, FirefoxFileName)
		}
		if !installed(root, b) {
			r.Browsers = append(r.Browsers, st)
			continue
		}
		st.Checked = true
		var allowed []string
		if b.Firefox {
			allowed, st.Problems = checkFirefox(st.Path, want)
		} else {
			allowed, st.Problems = checkChrome(st.Path, want)
		}
		for _, o := range want {
			if slices.Contains(allowed, o) {
				st.Allowed = append(st.Allowed, o)
			} else {
				st.Missing = append(st.Missing, o)
			}
		}
		r.Browsers = append(r.Browsers, st)
	}
	return r, err
}

func checkFirefox(path string, want []string) (allowed, problems []string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []string{err.Error()}
	}
	allowed, err = firefoxAllowed(data, want)
	if err != nil {
		return nil, []string{path + ": " + err.Error()}
	}
	return allowed, nil
}

// checkChrome reads a Chrome-family managed directory.
func checkChrome(dir string, want []string) (allowed, problems []string) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []string{err.Error()}
	}
	// policy name → its value in the last file (name order) that sets it.
	lists := map[string][]string{}
	for _, e := range entries { // ReadDir sorts by name
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			problems = append(problems, fmt.Sprintf("%s: not a JSON object (%v)", path, err))
			continue
		}
		for _, k := range []string{LoopbackPolicy, LNAPolicy} {
			raw, ok := m[k]
			if !ok {
				continue
			}
			var l []string
			if err := json.Unmarshal(raw, &l); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s is not a list of strings", path, k))
				l = nil
			}
			lists[k] = l
		}
	}
	for _, o := range want {
		if slices.ContainsFunc(lists[LoopbackPolicy], func(p string) bool { return chromeCovers(p, o) }) ||
			slices.ContainsFunc(lists[LNAPolicy], func(p string) bool { return chromeCovers(p, o) }) {
			allowed = append(allowed, o)
		}
	}
	return allowed, problems
}

// chromeCovers reports whether a Chrome URL pattern
// ([scheme://][[*.]]host[:port][/path], or "*") matches a canonical origin.
// Without a port, a pattern with a scheme means the scheme's default port
// and a pattern without a scheme any port.
func chromeCovers(pattern, origin string) bool {
	p := strings.ToLower(strings.TrimSpace(pattern))
	if p == "*" {
		return true
	}
	oScheme, oRest, _ := strings.Cut(origin, "://")
	oHost, oPort := splitOrigin(oScheme, oRest)
	scheme := ""
	if s, rest, ok := strings.Cut(p, "://"); ok {
		scheme, p = s, rest
	}
	if i := strings.IndexAny(p, "/@"); i >= 0 {
		p = p[:i]
	}
	if scheme != "" && scheme != "*" && scheme != oScheme {
		return false
	}
	wild := false
	for _, pre := range []string{"[*.]", "*."} {
		if rest, ok := strings.CutPrefix(p, pre); ok {
			wild, p = true, rest
		}
	}
	var h, port string
	if strings.HasPrefix(p, "[") {
		end := strings.IndexByte(p, ']')
		if end < 0 {
			return false
		}
		h, port = p[:end+1], strings.TrimPrefix(p[end+1:], ":")
	} else {
		h, port, _ = strings.Cut(p, ":")
	}
	h = strings.TrimSuffix(h, ".")
	switch {
	case port == "*":
	case port != "":
		if port != oPort {
			return false
		}
	case scheme != "" && scheme != "*":
		if oPort != defaultPort(oScheme) {
			return false
		}
	}
	return h == "*" || h == oHost || wild && strings.HasSuffix(oHost, "."+h)
}

// splitOrigin returns the host (IPv6 in brackets) and the port (the
// scheme's default when absent) of a canonical origin's host part.
func splitOrigin(scheme, rest string) (host, port string) {
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		host, port = rest[:end+1], strings.TrimPrefix(rest[end+1:], ":")
	} else {
		host, port, _ = strings.Cut(rest, ":")
	}
	if port == "" {
		port = defaultPort(scheme)
	}
	return host, port
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// Change is what Write did to one browser.
type Change struct {
	Browser Browser
	Path    string // the file written (or that would have been)
	// Action is "written", "unchanged" or "not installed".
	Action string
	// Backup is the copy of the file as it was before ("" when there was
	// none to keep).
	Backup string
}

// Write installs the policies for every browser installed under root:
// cpsagent.json in each Chrome-family managed directory (created 0755 when
// the browser is installed but the directory is not), and the
// LocalNetworkAccess policy merged into Firefox's policies.json (see
// MergeFirefox). Files are written atomically, mode 0644. A file that
// changes is first copied to a ".bak" beside the managed directory
// (<policies>/cpsagent.json.bak: Chrome reads every file of managed/) or
// beside policies.json. A malformed policies.json is left untouched and
// reported in err; the other browsers are still written.
func Write(root string, origins []string) ([]Change, error) {
	chrome, err := ChromeJSON(origins)
	if err != nil {
		return nil, err
	}
	var changes []Change
	var errs []error
	for _, b := range Browsers {
		dir := under(root, b.Dir)
		c := Change{Browser: b, Path: filepath.Join(dir, ChromeFileName), Action: "not installed"}
		if b.Firefox {
			c.Path = filepath.Join(dir, FirefoxFileName)
		}
		if !installed(root, b) {
			changes = append(changes, c)
			continue
		}
		old, rerr := os.ReadFile(c.Path)
		if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			errs = append(errs, rerr)
			continue
		}
		data := chrome
		backupDir := filepath.Dir(dir) // outside managed/: Chrome would read a backup there
		if b.Firefox {
			backupDir = dir
			merged, changed, merr := MergeFirefox(old, origins)
			if merr != nil {
				errs = append(errs, fmt.Errorf("%s: %w (left unchanged)", c.Path, merr))
				continue
			}
			if !changed {
				merged = old
			}
			data = merged
		}
		if rerr == nil && bytes.Equal(old, data) {
			c.Action = "unchanged"
			changes = append(changes, c)
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if rerr == nil {
			c.Backup = filepath.Join(backupDir, filepath.Base(c.Path)+".bak")
			if err := writeAtomic(c.Backup, old, backupDir); err != nil {
				errs = append(errs, fmt.Errorf("backup of %s: %w", c.Path, err))
				continue
			}
		}
		if err := writeAtomic(c.Path, data, backupDir); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Action = "written"
		changes = append(changes, c)
	}
	return changes, errors.Join(errs...)
}

// writeAtomic writes data to path (mode 0644) through a temporary file in
// tmpDir (on the same file system, outside a directory a browser reads
// whole) and a rename.
func writeAtomic(path string, data []byte, tmpDir string) error {
	return atomicfile.WriteFile(path, data, 0o644, atomicfile.Options{TempDir: tmpDir})
}
