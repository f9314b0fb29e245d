package install

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// NSS databases (Chromium and Firefox on Linux) are changed with certutil
// from libnss3-tools / nss-tools, as mkcert does: the SQL format
// ("sql:DIR", cert9.db + key4.db) can be written while the browser runs.

// ErrNoCertutil is returned when certutil is not installed.
var ErrNoCertutil = errors.New(`install: "certutil" not found: install libnss3-tools (Debian, Ubuntu) or nss-tools (Fedora, RHEL) and run "cpsagent install" again`)

// nssTrust is "trusted CA for TLS servers", nothing for mail or code.
const nssTrust = "C,,"

func certutil() (string, error) {
	p, err := exec.LookPath("certutil")
	if err != nil {
		return "", ErrNoCertutil
	}
	return p, nil
}

func nssHasDB(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cert9.db"))
	return err == nil
}

// nssAdd puts ca in the NSS DB at tg.location, creating the DB when
// tg.create is set and it does not exist.
func (e *env) nssAdd(ctx context.Context, tg trustTarget, ca *x509.Certificate) (*TrustEntry, error) {
	cu, err := certutil()
	if err != nil {
		return nil, err
	}
	entry := &TrustEntry{Store: StoreNSS, Location: tg.location, Nickname: Nickname(ca), SHA256: Fingerprint(ca)}
	db := "sql:" + tg.location
	if !nssHasDB(tg.location) {
		if !tg.create {
			return nil, fmt.Errorf("%w: no certificate database (cert9.db) yet: start this browser once, then run \"cpsagent install\" again", errSkip)
		}
		dirs, err := mkdirAllRecord(tg.location, 0o700)
		if err != nil {
			return nil, fmt.Errorf("install: creating %s: %w", tg.location, err)
		}
		before := listDir(tg.location)
		if _, err := run(ctx, cu, "-N", "-d", db, "--empty-password"); err != nil {
			removeCreated(dirs)
			return nil, fmt.Errorf("install: creating the NSS database %s: %w", tg.location, err)
		}
		entry.Created = dirs
		for _, f := range slices.Sorted(maps.Keys(listDir(tg.location))) {
			if !before[f] {
				entry.Created = append(entry.Created, filepath.Join(tg.location, f))
			}
		}
	}
	pemFile, cleanup, err := e.tempPEM(ca)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if out, err := run(ctx, cu, "-A", "-d", db, "-t", nssTrust, "-n", entry.Nickname, "-i", pemFile); err != nil {
		if bytes.Contains(bytes.ToLower(out), []byte("password")) || bytes.Contains(bytes.ToLower(out), []byte("authenticate")) {
			err = fmt.Errorf("%w (the database is protected by a primary password: add the CA from the browser's certificate settings)", err)
		}
		return nil, fmt.Errorf("install: adding the CA to %s: %w", tg.location, err)
	}
	return entry, nil
}

// nssPresent reports whether the DB still holds our certificate under our
// nickname.
func (e *env) nssPresent(ctx context.Context, t TrustEntry) (bool, error) {
	cu, err := certutil()
	if err != nil {
		return false, err
	}
	if !nssHasDB(t.Location) {
		return false, nil
	}
	out, err := run(ctx, cu, "-L", "-d", "sql:"+t.Location, "-n", t.Nickname, "-a")
	if err != nil {
		return false, nil // "could not find certificate named …"
	}
	for rest := out; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false, nil
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && Fingerprint(c) == t.SHA256 {
			return true, nil
		}
	}
}

// nssRemove deletes our certificate (checked by fingerprint: a different
// certificate under the same nickname is left alone), then the DB itself
// if Install created it and it is now empty.
func (e *env) nssRemove(ctx context.Context, t TrustEntry) error {
	if !nssHasDB(t.Location) {
		removeCreated(t.Created)
		return nil // the DB was deleted: nothing left to remove
	}
	cu, err := certutil()
	if err != nil {
		return err
	}
	for range 4 { // a nickname can hold the same cert twice after manual imports
		ok, err := e.nssPresent(ctx, t)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if _, err := run(ctx, cu, "-D", "-d", "sql:"+t.Location, "-n", t.Nickname); err != nil {
			return fmt.Errorf("install: removing the CA from %s: %w", t.Location, err)
		}
	}
	if len(t.Created) > 0 {
		n, err := nssCount(ctx, cu, t.Location)
		if err == nil && n == 0 {
			removeCreated(t.Created)
		}
	}
	return nil
}

// nssCount returns the number of certificates in a DB.
func nssCount(ctx context.Context, cu, dir string) (int, error) {
	out, err := run(ctx, cu, "-L", "-d", "sql:"+dir)
	if err != nil {
		return 0, err
	}
	return len(parseCertutilList(out)), nil
}

// NSSEntry is one row of "certutil -L".
type NSSEntry struct {
	Nickname, Trust string
}

// parseCertutilList parses "certutil -L": a header ending with the
// "SSL,S/MIME,JAR/XPI" line, then one "nickname   trust" row per
// certificate (nicknames may contain spaces; the trust flags are the last
// field).
func parseCertutilList(out []byte) []NSSEntry {
	var entries []NSSEntry
	header := true
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if header {
			if strings.Contains(line, "SSL,S/MIME,JAR/XPI") {
				header = false
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		i := strings.LastIndexAny(line, " \t")
		if i < 0 {
			continue
		}
		entries = append(entries, NSSEntry{Nickname: strings.TrimSpace(line[:i]), Trust: line[i+1:]})
	}
	return entries
}

func listDir(dir string) map[string]bool {
	m := map[string]bool{}
	des, err := os.ReadDir(dir)
	if err != nil {
		return m
	}
	for _, d := range des {
		m[d.Name()] = true
	}
	return m
}

// tempPEM writes ca to a temporary PEM file in the state directory.
func (e *env) tempPEM(ca *x509.Certificate) (string, func(), error) {
	if err := os.MkdirAll(e.StateDir, 0o700); err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(e.StateDir, "ca-*.pem")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}); err != nil {
		f.Close()
		cleanup()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

// globDirs returns the directories matching pattern (sorted).
func globDirs(pattern string) []string {
	ms, _ := filepath.Glob(pattern)
	var dirs []string
	for _, m := range ms {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			dirs = append(dirs, m)
		}
	}
	return dirs
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
