package install

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"strings"
	"text/template"
)

// The autostart files are templates on the agent's path. The copies under
// packaging/ are these files rendered for /usr/bin/cpsagent (a test keeps
// them identical).

//go:embed assets/cpsagent.service
var unitTemplate string

//go:embed assets/cpsagent-autostart.desktop
var desktopTemplate string

//go:embed assets/cpsagent.plist
var plistTemplate string

// UnitName is the systemd user unit; LaunchdLabel the macOS LaunchAgent.
const (
	UnitName     = "cpsagent.service"
	DesktopName  = "cpsagent.desktop"
	LaunchdLabel = "io.github.cpsagent"
	RunValueName = "cpsagent"
)

// RenderUnit returns the systemd user unit that runs exe.
func RenderUnit(exe string) []byte { return render(unitTemplate, systemdQuote(exe)) }

// RenderDesktop returns the XDG autostart entry that runs exe.
func RenderDesktop(exe string) []byte { return render(desktopTemplate, desktopQuote(exe)) }

// RenderPlist returns the LaunchAgent property list that runs exe.
func RenderPlist(exe string) []byte { return render(plistTemplate, xmlEscape(exe)) }

func render(tmpl, exec string) []byte {
	t := template.Must(template.New("").Parse(tmpl))
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ Exec string }{exec}); err != nil {
		panic(err) // the templates are constants
	}
	return b.Bytes()
}

// systemdQuote quotes a path for ExecStart= (specifiers escaped).
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if !strings.ContainsAny(s, " \t\"'\\$;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}

// desktopQuote quotes a path for a desktop entry's Exec= key (Desktop
// Entry Specification, "The Exec key").
func desktopQuote(s string) string {
	if !strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`%") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\\\`, `"`, `\\"`, "`", "\\\\`", `$`, `\\$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
