// Package pinentrytest gives tests, in this package and others, a scripted
// pinentry program: internal/pinentry/testdata/fake-pinentry, a POSIX sh
// script that speaks the Assuan protocol and is driven by environment
// variables (see [Options] and the script's header).
//
//	cfg := pinentry.Config{
//		Program: pinentrytest.Path(),
//		Env:     pinentrytest.Options{PINs: []string{"0000", "1234"}, StateFile: filepath.Join(t.TempDir(), "n")}.Env(),
//	}
//
// The script needs /bin/sh (Linux, macOS, BSD; not Windows).
package pinentrytest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Modes of the fake pinentry (FAKE_PINENTRY_MODE).
const (
	ModeOK            = "ok"             // GETPIN answers the PIN, CONFIRM answers OK
	ModeCancel        = "cancel"         // GETPIN and CONFIRM answer "Operation cancelled"
	ModeHang          = "hang"           // GETPIN and CONFIRM never answer
	ModeCrash         = "crash"          // GETPIN and CONFIRM make the program exit without answering
	ModeTimeout       = "timeout"        // GETPIN and CONFIRM answer pinentry's own timeout error
	ModeConfirmOK     = "confirm-ok"     // CONFIRM answers OK (allow once)
	ModeConfirmNotOK  = "confirm-notok"  // CONFIRM answers "Not confirmed" (the SETNOTOK button: always allow)
	ModeConfirmCancel = "confirm-cancel" // CONFIRM answers "Operation cancelled" (refuse)
)

// Path returns the absolute path of the fake pinentry script. It panics when
// the script cannot be found (for example in a binary built with -trimpath),
// which only happens in a broken test setup.
func Path() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		panic(fmt.Sprintf("pinentrytest: cannot locate the package source (%q); do not build tests with -trimpath", file))
	}
	p := filepath.Join(filepath.Dir(file), "..", "testdata", "fake-pinentry")
	st, err := os.Stat(p)
	if err != nil {
		panic("pinentrytest: " + err.Error())
	}
	if st.Mode()&0o111 == 0 {
		panic("pinentrytest: " + p + " is not executable (chmod +x it)")
	}
	return filepath.Clean(p)
}

// Options set the behaviour of one or more runs of the fake pinentry.
type Options struct {
	Mode string // one of the Mode constants; "" is ModeOK
	PIN  string // answer to every GETPIN
	// PINs are answered one per GETPIN, across runs, counted in StateFile
	// (required with PINs; use a file in t.TempDir()). Once they are all used,
	// GETPIN answers "Operation cancelled".
	PINs      []string
	StateFile string
	// LogFile receives every command the program gets, one per line (never a
	// PIN: the PIN is an answer). Read it with ReadLog.
	LogFile string
	// Delay is waited before each GETPIN/CONFIRM answer.
	Delay time.Duration
}

// Env returns the environment entries for pinentry.Config.Env.
func (o Options) Env() []string {
	env := []string{
		"FAKE_PINENTRY_MODE=" + o.Mode,
		"FAKE_PINENTRY_PIN=" + o.PIN,
		"FAKE_PINENTRY_PINS=" + strings.Join(o.PINs, ","),
		"FAKE_PINENTRY_STATE=" + o.StateFile,
		"FAKE_PINENTRY_LOG=" + o.LogFile,
		"FAKE_PINENTRY_DELAY=",
	}
	if o.Delay > 0 {
		env[len(env)-1] += fmt.Sprintf("%.3f", o.Delay.Seconds())
	}
	return env
}

// ReadLog returns the commands logged in path, one per element; nil when the
// file does not exist.
func ReadLog(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}
