// Package ledger keeps the local activity ledger: an append-only JSON-lines
// record of every authentication, signature and PIN-management operation done
// with the card, kept in the user's state directory.
//
// An [Entry] holds the time, the requesting origin, the operation, the serial
// number of the certificate used, the SHA-256 of what was signed and the
// result code. It never holds a PIN, a document or a signed value: the fields
// are validated so that none can carry free text (the origin must be an
// origin, the serial and digest hexadecimal, the result a problem code).
//
// The ledger is bounded: when the current file would grow past
// Options.MaxBytes it is renamed ledger.1.jsonl (the older ones shift to .2,
// .3, ...) and a new file is started; at most Options.Keep rotated files are
// kept, so the ledger never uses more than (Keep+1)×MaxBytes. Files are created
// with mode 0600.
package ledger

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names what was done with the card.
type Operation string

// Operations recorded.
const (
	OpAuthenticate Operation = "authenticate" // POST /v1/authenticate
	OpSign         Operation = "sign"         // POST /v1/sign
	OpReadCard     Operation = "read-card"    // GET /v1/card (identity shown to a site)
	OpChangePIN    Operation = "change-pin"   // tray
	OpUnblockPIN   Operation = "unblock-pin"  // tray
)

// ResultOK is the result code of a successful operation; failures use the
// API's problem codes (pin_incorrect, pin_cancelled, card_removed, ...).
const ResultOK = "ok"

// Entry is one line of the ledger.
type Entry struct {
	Time time.Time `json:"time"`
	// Origin is the web origin that asked (scheme://host[:port]); empty for
	// operations started from the tray.
	Origin    string    `json:"origin,omitempty"`
	Operation Operation `json:"operation"`
	// CertSerial is the serial number of the certificate used, hexadecimal
	// (as x509.Certificate.SerialNumber.Text(16)).
	CertSerial string `json:"certSerial,omitempty"`
	// SHA256 is the hexadecimal SHA-256 of what was signed (the DigestInfo
	// input for an authentication, the document digest or the data to sign
	// for a signature); see Digest.
	SHA256 string `json:"sha256,omitempty"`
	// Result is ResultOK or an API problem code.
	Result string `json:"result"`
}

// Digest returns the value for Entry.SHA256: the hexadecimal SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ErrInvalidEntry is returned by Record for an entry whose fields do not have
// their expected form; nothing is written.
var ErrInvalidEntry = errors.New("ledger: invalid entry")

// Validate checks the form of every field.
func (e Entry) Validate() error {
	if !validOperation(string(e.Operation)) {
		return fmt.Errorf("%w: operation %q", ErrInvalidEntry, truncate(string(e.Operation), 40))
	}
	if e.Origin != "" && !validOrigin(e.Origin) {
		return fmt.Errorf("%w: origin", ErrInvalidEntry)
	}
	if len(e.CertSerial) > 64 || !isHex(e.CertSerial) {
		return fmt.Errorf("%w: certificate serial must be hexadecimal (at most 64 digits)", ErrInvalidEntry)
	}
	if e.SHA256 != "" && (len(e.SHA256) != 64 || !isHex(e.SHA256)) {
		return fmt.Errorf("%w: sha256 must be 64 hexadecimal digits", ErrInvalidEntry)
	}
	if !validCode(e.Result) {
		return fmt.Errorf("%w: result code %q", ErrInvalidEntry, truncate(e.Result, 40))
	}
	return nil
}

func validOperation(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

func validCode(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// validOrigin accepts scheme://host[:port] in ASCII, as browsers send it.
func validOrigin(s string) bool {
	if len(s) > 255 {
		return false
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "https" && scheme != "http") || rest == "" {
		return false
	}
	for _, c := range rest {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Options bound the ledger.
type Options struct {
	// MaxBytes is the size at which the current file is rotated. Default 1 MiB.
	MaxBytes int64
	// Keep is the number of rotated files kept besides the current one.
	// Default 5.
	Keep int
	// Now is the clock used for entries without a time (tests).
	Now func() time.Time
}

// FileName is the name of the current ledger file in the state directory;
// rotated files are ledger.1.jsonl (newest) to ledger.<Keep>.jsonl.
const FileName = "ledger.jsonl"

// Ledger appends entries to the ledger files of one directory. It is safe
// for concurrent use. One agent process owns a directory.
type Ledger struct {
	dir  string
	opts Options

	mu   sync.Mutex
	f    *os.File
	size int64

	onRecord atomic.Pointer[func()]
}

// OnRecord registers f, called after each entry is written (the tray
// refreshes its recent-activity list on it instead of polling the file).
func (l *Ledger) OnRecord(f func()) { l.onRecord.Store(&f) }

// Open opens (creating it if needed) the ledger in dir.
func Open(dir string, opts Options) (*Ledger, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 20
	}
	if opts.Keep <= 0 {
		opts.Keep = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: creating directory: %w", err)
	}
	l := &Ledger{dir: dir, opts: opts}
	if err := l.openCurrent(); err != nil {
		return nil, err
	}
	return l, nil
}

// Dir returns the directory of the ledger files.
func (l *Ledger) Dir() string { return l.dir }

func (l *Ledger) path(i int) string {
	if i == 0 {
		return filepath.Join(l.dir, FileName)
	}
	return filepath.Join(l.dir, fmt.Sprintf("ledger.%d.jsonl", i))
}

func (l *Ledger) openCurrent() error {
	f, err := os.OpenFile(l.path(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: opening: %w", err)
	}
	// A file created by an older version or by hand may be wider.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("ledger: setting mode: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Record validates e and appends it as one line. A zero Time is set to now;
// times are stored in UTC.
func (l *Ledger) Record(e Entry) (err error) {
	if err := e.Validate(); err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = l.opts.Now()
	}
	e.Time = e.Time.UTC()
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ledger: encoding: %w", err)
	}
	line = append(line, '\n')

	defer func() {
		if f := l.onRecord.Load(); f != nil && *f != nil && err == nil {
			(*f)()
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("ledger: closed")
	}
	if l.size > 0 && l.size+int64(len(line)) > l.opts.MaxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("ledger: writing: %w", err)
	}
	return nil
}

// rotate shifts ledger.i → ledger.i+1 (dropping the oldest) and starts a new
// current file. Called with l.mu held.
func (l *Ledger) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("ledger: closing for rotation: %w", err)
	}
	l.f = nil
	if err := os.Remove(l.path(l.opts.Keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ledger: rotating: %w", err)
	}
	for i := l.opts.Keep - 1; i >= 0; i-- {
		if err := os.Rename(l.path(i), l.path(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ledger: rotating: %w", err)
		}
	}
	return l.openCurrent()
}

// Close closes the current file. Record fails afterwards; reading still works.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Entries returns every entry kept, oldest first, skipping lines that do not
// parse (a torn last line after a crash, a hand edit).
func (l *Ledger) Entries() ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []Entry
	for i := l.opts.Keep; i >= 0; i-- {
		f, err := os.Open(l.path(i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ledger: reading: %w", err)
		}
		es, _, err := Read(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, es...)
	}
	return all, nil
}

// Recent returns at most n entries, newest first.
func (l *Ledger) Recent(n int) ([]Entry, error) {
	all, err := l.Entries()
	if err != nil {
		return nil, err
	}
	if n > len(all) {
		n = len(all)
	}
	out := make([]Entry, 0, n)
	for i := len(all) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, all[i])
	}
	return out, nil
}

// MaxLine is the longest line Read accepts; longer lines are skipped.
const MaxLine = 4096

// Read parses a ledger file. Lines that are not a valid entry are skipped and
// counted in bad. It fails only on a read error.
func Read(r io.Reader) (entries []Entry, bad int, err error) {
	br := bufio.NewReaderSize(r, MaxLine+1)
	for {
		line, isPrefix, err := br.ReadLine()
		if err == io.EOF {
			return entries, bad, nil
		}
		if err != nil {
			return entries, bad, fmt.Errorf("ledger: reading: %w", err)
		}
		if isPrefix { // too long: skip the rest of the line
			bad++
			for isPrefix && err == nil {
				_, isPrefix, err = br.ReadLine()
			}
			if err != nil && err != io.EOF {
				return entries, bad, fmt.Errorf("ledger: reading: %w", err)
			}
			continue
		}
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var e Entry
		if json.Unmarshal(line, &e) != nil || e.Validate() != nil || e.Time.IsZero() {
			bad++
			continue
		}
		entries = append(entries, e)
	}
}
