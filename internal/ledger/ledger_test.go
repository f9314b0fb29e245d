package ledger

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func entry(i int) Entry {
	return Entry{
		Time:       t0.Add(time.Duration(i) * time.Second),
		Origin:     "https://portail.example.fr",
		Operation:  OpSign,
		CertSerial: "0a1b2c",
		SHA256:     Digest([]byte(fmt.Sprint(i))),
		Result:     ResultOK,
	}
}

func TestValidate(t *testing.T) {
	ok := entry(0)
	tests := []struct {
		name   string
		mutate func(*Entry)
		valid  bool
	}{
		{"ok", func(*Entry) {}, true},
		{"tray operation without origin", func(e *Entry) { e.Origin = ""; e.Operation = OpChangePIN; e.SHA256 = "" }, true},
		{"IPv6 origin with port", func(e *Entry) { e.Origin = "https://[::1]:8443" }, true},
		{"empty operation", func(e *Entry) { e.Operation = "" }, false},
		{"operation with text", func(e *Entry) { e.Operation = "sign PIN 1234" }, false},
		{"origin with path", func(e *Entry) { e.Origin = "https://x.fr/1234" }, false},
		{"origin free text", func(e *Entry) { e.Origin = "pin=1234" }, false},
		{"origin other scheme", func(e *Entry) { e.Origin = "file://x" }, false},
		{"origin too long", func(e *Entry) { e.Origin = "https://" + strings.Repeat("a", 260) }, false},
		{"serial not hex", func(e *Entry) { e.CertSerial = "12 34" }, false},
		{"serial too long", func(e *Entry) { e.CertSerial = strings.Repeat("a", 65) }, false},
		{"digest short", func(e *Entry) { e.SHA256 = "abcd" }, false},
		{"digest not hex", func(e *Entry) { e.SHA256 = strings.Repeat("z", 64) }, false},
		{"empty result", func(e *Entry) { e.Result = "" }, false},
		{"result text", func(e *Entry) { e.Result = "wrong PIN 1234" }, false},
		{"result problem code", func(e *Entry) { e.Result = "pin_incorrect" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.mutate(&e)
			err := e.Validate()
			if (err == nil) != tt.valid {
				t.Fatalf("Validate() = %v, want valid=%v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("error %v does not match ErrInvalidEntry", err)
			}
		})
	}
}

func TestRecordAndRead(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		if err := l.Record(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	noTime := entry(9)
	noTime.Time = time.Time{}
	if err := l.Record(noTime); err != nil {
		t.Fatal(err)
	}
	bad := entry(4)
	bad.Result = "PIN 1234"
	if err := l.Record(bad); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("Record(bad) = %v", err)
	}
	es, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("%d entries, want 4", len(es))
	}
	if !es[3].Time.Equal(t0) {
		t.Errorf("zero time not set to now: %v", es[3].Time)
	}
	rec, err := l.Recent(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 2 || rec[0].SHA256 != noTime.SHA256 || rec[1].SHA256 != entry(2).SHA256 {
		t.Errorf("Recent(2) = %+v", rec)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestModeTightenedOnOpen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	line, _ := json.Marshal(entry(0))
	lineLen := int64(len(line) + 1)
	// Room for exactly 3 lines per file, 2 rotated files kept.
	l, err := Open(dir, Options{MaxBytes: 3 * lineLen, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 20
	for i := range n {
		if err := l.Record(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "ledger*.jsonl"))
	if len(files) != 3 {
		t.Fatalf("files %v, want current + 2 rotated", files)
	}
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 3*lineLen {
			t.Errorf("%s is %d bytes, over the bound %d", f, st.Size(), 3*lineLen)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode().Perm())
		}
		total += st.Size()
	}
	es, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	// 20 entries, 3 per file: current holds 20-18=2, then two full files.
	if len(es) != 8 {
		t.Fatalf("%d entries kept, want 8", len(es))
	}
	for i, e := range es {
		if want := entry(n - 8 + i); e.SHA256 != want.SHA256 {
			t.Fatalf("entry %d is %v, want the one recorded %d-th", i, e.Time, n-8+i)
		}
	}
	// Reopening continues the current file.
	l.Close()
	l2, err := Open(dir, Options{MaxBytes: 3 * lineLen, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Record(entry(n)); err != nil {
		t.Fatal(err)
	}
	if es, _ := l2.Entries(); len(es) != 9 {
		t.Fatalf("after reopen: %d entries, want 9", len(es))
	}
}

func TestReadSkipsDamage(t *testing.T) {
	good, _ := json.Marshal(entry(1))
	in := strings.Join([]string{
		string(good),
		`{"time":"2026-11-25T10:00:00Z","operation":"sign","result":"ok","pin":"1234"}`, // unknown field is ignored, entry is valid
		`{"time":"2026-11-25T10:00:00Z","operation":"sign","result":"PIN 1234"}`,        // invalid result
		`not json`,
		``,
		`{"operation":"sign","result":"ok"}`, // no time
		strings.Repeat("x", MaxLine+10),
		string(good)[:20], // torn last line
	}, "\n")
	es, bad, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || bad != 5 {
		t.Fatalf("got %d entries, %d bad; want 2, 5", len(es), bad)
	}
}

func TestExport(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		if err := l.Record(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	var c bytes.Buffer
	if err := l.ExportCSV(&c); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("csv = %q", recs)
	}
	if recs[1][0] != "2026-11-25T10:00:00Z" || recs[1][1] != "https://portail.example.fr" || recs[1][2] != "sign" || recs[1][4] != entry(0).SHA256 || recs[1][5] != "ok" {
		t.Errorf("csv row = %q", recs[1])
	}
	var j bytes.Buffer
	if err := l.ExportJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back []Entry
	if err := json.Unmarshal(j.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || back[2] != entry(2) {
		t.Fatalf("json round trip: %+v", back)
	}
	var empty bytes.Buffer
	if err := WriteJSON(&empty, nil); err != nil || strings.TrimSpace(empty.String()) != "[]" {
		t.Fatalf("empty export %q, %v", empty.String(), err)
	}
}

func TestCSVFormulaGuard(t *testing.T) {
	var b bytes.Buffer
	e := entry(0)
	e.Origin = "=HYPERLINK(1)" // not valid, but exports must not trust validation
	if err := WriteCSV(&b, []Entry{e}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "'=HYPERLINK(1)") {
		t.Fatalf("formula not neutralised: %q", b.String())
	}
}

func TestConcurrentRecord(t *testing.T) {
	l, err := Open(t.TempDir(), Options{MaxBytes: 4096, Keep: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := l.Record(entry(g*100 + i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	es, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 200 {
		t.Fatalf("%d entries, want 200 (none torn or lost)", len(es))
	}
}

func FuzzRead(f *testing.F) {
	good, _ := json.Marshal(entry(1))
	f.Add(good)
	f.Add([]byte(string(good) + "\n" + string(good)))
	f.Add([]byte(`{"time":"2026-11-25T10:00:00Z","operation":"sign","result":"ok","sha256":""}`))
	f.Add([]byte("{\"time\":\"x\"}\n\n\r\n{"))
	f.Add([]byte(strings.Repeat("a", MaxLine+2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, bad, err := Read(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if bad < 0 || len(es) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d entries from %d lines", len(es), bytes.Count(data, []byte("\n"))+1)
		}
		// Every entry read is valid and survives a write/read round trip.
		var buf bytes.Buffer
		for _, e := range es {
			if err := e.Validate(); err != nil {
				t.Fatalf("Read returned an invalid entry: %v", err)
			}
			line, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(line)
			buf.WriteByte('\n')
		}
		back, bad2, err := Read(&buf)
		if err != nil || bad2 != 0 || len(back) != len(es) {
			t.Fatalf("round trip: %d/%d entries, %d bad, %v", len(back), len(es), bad2, err)
		}
		for i := range es {
			if !back[i].Time.Equal(es[i].Time) || back[i].Origin != es[i].Origin || back[i].SHA256 != es[i].SHA256 {
				t.Fatalf("round trip changed entry %d", i)
			}
		}
		_ = WriteCSV(&bytes.Buffer{}, es)
	})
}

// TestOnRecord: the tray refreshes its activity list on OnRecord instead of
// polling the file; a rejected entry does not call it.
func TestOnRecord(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var n atomic.Int32
	l.OnRecord(func() { n.Add(1) })
	if err := l.Record(entry(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(Entry{}); err == nil {
		t.Fatal("empty entry accepted")
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("OnRecord called %d times, want 1", got)
	}
}
