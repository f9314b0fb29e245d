package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestFileAndConsole(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	var console bytes.Buffer
	l, err := New(Options{Level: "info", Dir: dir, Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden at info")
	l.Info("request", Origin("https://portal.example"), Status(200), Elapsed(3*time.Millisecond))
	l.Warn("warned", Err(errors.New("boom")))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, l.Path)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %v", len(lines), lines)
	}
	if lines[0]["msg"] != "request" || lines[0]["origin"] != "https://portal.example" || lines[0]["status"] != float64(200) || lines[0]["level"] != "info" {
		t.Errorf("line 0 = %v", lines[0])
	}
	if _, ok := lines[0]["time"]; !ok {
		t.Errorf("no time in %v", lines[0])
	}
	if lines[1]["error"] != "boom" {
		t.Errorf("line 1 = %v", lines[1])
	}
	if !strings.Contains(console.String(), "request") || strings.Contains(console.String(), "hidden") {
		t.Errorf("console = %q", console.String())
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(l.Path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("log file mode %v, want 0600", fi.Mode().Perm())
		}
		di, _ := os.Stat(dir)
		if di.Mode().Perm() != 0o700 {
			t.Errorf("log dir mode %v, want 0700", di.Mode().Perm())
		}
	}
}

func TestExistingFileTightened(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("x")
	l.Close()
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want zapcore.Level
		ok   bool
	}{{"", zapcore.InfoLevel, true}, {"debug", zapcore.DebugLevel, true}, {"INFO", zapcore.InfoLevel, true},
		{"warn", zapcore.WarnLevel, true}, {"error", zapcore.ErrorLevel, true}, {"trace", 0, false}} {
		got, err := ParseLevel(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseLevel(%q) = %v, %v", tc.in, got, err)
		}
	}
	if _, err := New(Options{Level: "loud"}); err == nil {
		t.Error("New accepted an unknown level")
	}
}

// TestSec39_SecretsNeverReachTheLog logs secrets through every careless
// path zap offers and checks that none of them reach the file.
func TestSec39_SecretsNeverReachTheLog(t *testing.T) {
	dir := t.TempDir()
	l, err := New(Options{Level: "debug", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const pin = "4821"
	verify := []byte{0x00, 0x20, 0x00, 0x01, 0x04, '4', '8', '2', '1'}
	doc := []byte("PATIENT DOCUMENT 1234567890123")
	type req struct {
		PIN      string
		Document []byte
	}
	l.Info("careless",
		zap.String("pin", pin),
		zap.String("PIN", pin),
		zap.String("userPin", pin),
		zap.String("new_pin", pin),
		zap.String("puk", "12345678"),
		zap.Binary("apdu", verify),
		zap.ByteString("whatever", doc),
		zap.Any("bytes", doc),
		zap.Any("request", req{PIN: pin, Document: doc}),
		zap.Any("map", map[string]string{"pin": pin}),
		zap.String("document", string(doc)),
		zap.String("dataToSign", "c2VjcmV0"),
		zap.String("pinentry", "/usr/bin/pinentry-gnome3"),
	)
	l.With(zap.String("pin", pin), zap.Binary("data", doc)).Info("with")
	l.Close()
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{pin, "12345678", "PATIENT", "c2VjcmV0", "ACAAAQQ0ODIx" /* base64 of VERIFY */, "00200001"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("log contains %q:\n%s", secret, raw)
		}
	}
	if !bytes.Contains(raw, []byte("pinentry-gnome3")) {
		t.Errorf("the pinentry program name was redacted too:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(Redacted)) {
		t.Errorf("no redaction placeholder:\n%s", raw)
	}
}

func TestFieldHelpers(t *testing.T) {
	dir := t.TempDir()
	l, _ := New(Options{Level: "debug", Dir: dir})
	l.Info("x",
		Origin("https://evil.example\n{\"forged\":true}\u202e"),
		Serial("8025000001123456"),
		Reader("Virtual PCD 00 00"),
		Op("sign"), Code("pin_incorrect"), TriesLeft(2), CardTime(time.Millisecond), Size(10), Err(nil),
		Path("/v1/sign"), Method("POST"), Host("127.0.0.1:47180"), Addr("127.0.0.1:1"), Event("card-inserted"), Name("k", "v"),
	)
	l.Close()
	lines := readLines(t, filepath.Join(dir, FileName))
	if len(lines) != 1 {
		t.Fatalf("lines: %v", lines)
	}
	m := lines[0]
	if o := m["origin"].(string); strings.ContainsAny(o, "\n\u202e") {
		t.Errorf("origin not cleaned: %q", o)
	}
	if s := m["serial"].(string); s != "************3456" {
		t.Errorf("serial = %q", s)
	}
	if _, ok := m["error"]; ok {
		t.Errorf("nil error logged: %v", m)
	}
	long := Origin(strings.Repeat("a", 1000))
	if len(long.String) > maxFieldLen+len("…") {
		t.Errorf("field not bounded: %d", len(long.String))
	}
}

func TestNoOutput(t *testing.T) {
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("nowhere")
	if l.Path != "" {
		t.Errorf("Path = %q", l.Path)
	}
	l.SetLevel(zapcore.DebugLevel)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
