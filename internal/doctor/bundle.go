package doctor

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
)

// LogTailLines is how many of the last log lines go into a bundle.
const LogTailLines = 500

var (
	// Runs of 7 or more digits: RPPS (11), ADELI (9), card numbers (10),
	// national ids, certificate serials in decimal.
	digitRun = regexp.MustCompile(`[0-9]{7,}`)
	// Runs of 16 or more hex digits: certificate serials, fingerprints,
	// digests, ATR-derived identifiers.
	hexRun = regexp.MustCompile(`(?i)\b[0-9a-f]{16,}\b`)
	// Values of fields named like a serial or an identifier.
	idField = regexp.MustCompile(`(?i)("?(?:serial(?:number)?|certserial|nationalid|rpps|adeli|subjectnameid|sha256|idnat|preferred_username)"?\s*[:=]\s*"?)([^",}\s]+)`)
)

// Redact masks national identifiers, serial numbers and digests in text,
// keeping the last 3 characters of each ("********567") so that support can
// still tell two cards apart.
func Redact(s string) string {
	s = idField.ReplaceAllStringFunc(s, func(m string) string {
		sub := idField.FindStringSubmatch(m)
		return sub[1] + mask(sub[2])
	})
	s = hexRun.ReplaceAllStringFunc(s, mask)
	return digitRun.ReplaceAllStringFunc(s, mask)
}

func mask(v string) string {
	if strings.Trim(v, "*") == "" || len(v) <= 3 {
		return v
	}
	return strings.Repeat("*", len(v)-3) + v[len(v)-3:]
}

// WriteBundle writes a support bundle to path (a zip, mode 0600, never
// overwriting a file): the report in French, English and JSON, the
// configuration and machine policy files, the user's allowed sites, and the
// last LogTailLines lines of the newest log file, all redacted. It holds no
// PIN (never logged), no document and no ledger digests.
func WriteBundle(path string, r Report, d Deps) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("doctor: bundle: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	zw := zip.NewWriter(f)
	add := func(name string, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: r.Time})
		if err != nil {
			return err
		}
		_, err = w.Write([]byte(Redact(string(data))))
		return err
	}
	var errs []error
	for _, lang := range []i18n.Lang{i18n.FR, i18n.EN} {
		var b bytes.Buffer
		_ = r.WriteText(&b, lang)
		errs = append(errs, add("report-"+lang.Code()+".txt", b.Bytes()))
	}
	js, _ := json.MarshalIndent(r.JSON(), "", "  ")
	errs = append(errs, add("report.json", js))
	copyFile := func(name, src string) {
		if src == "" {
			return
		}
		b, err := readLimited(src, 1<<20)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			b = []byte("unreadable: " + err.Error())
		}
		errs = append(errs, add(name, b))
	}
	copyFile("config.json", d.ConfigFile)
	policy := d.PolicyPath
	if policy == "" {
		policy = consent.DefaultPolicyPath()
	}
	copyFile("policy.json", policy)
	if d.StateDir != "" {
		copyFile(consent.StoreFile, filepath.Join(d.StateDir, consent.StoreFile))
	}
	if d.LogDir != "" {
		if name, lines, err := lastLogLines(d.LogDir, LogTailLines); err == nil && name != "" {
			errs = append(errs, add("logs/"+name, lines))
		}
	}
	errs = append(errs, zw.Close())
	return errors.Join(errs...)
}

func readLimited(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// lastLogLines returns the newest regular file of dir and its last n lines.
func lastLogLines(dir string, n int) (string, []byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	type cand struct {
		name string
		mod  time.Time
	}
	var cs []cand
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil {
			cs = append(cs, cand{e.Name(), info.ModTime()})
		}
	}
	if len(cs) == 0 {
		return "", nil, nil
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].mod.After(cs[j].mod) })
	f, err := os.Open(filepath.Join(dir, cs[0].name))
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	ring := make([]string, 0, n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(ring) == n {
			ring = ring[1:]
		}
		ring = append(ring, sc.Text())
	}
	return cs[0].name, []byte(strings.Join(ring, "\n") + "\n"), sc.Err()
}
