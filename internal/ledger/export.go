package ledger

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// CSVHeader is the first record of ExportCSV.
var CSVHeader = []string{"time", "origin", "operation", "certSerial", "sha256", "result"}

// ExportCSV writes every entry kept, oldest first, as CSV (RFC 4180) with a
// header line.
func (l *Ledger) ExportCSV(w io.Writer) error {
	es, err := l.Entries()
	if err != nil {
		return err
	}
	return WriteCSV(w, es)
}

// ExportJSON writes every entry kept, oldest first, as one JSON array.
func (l *Ledger) ExportJSON(w io.Writer) error {
	es, err := l.Entries()
	if err != nil {
		return err
	}
	return WriteJSON(w, es)
}

// WriteCSV writes entries as CSV. Cells that a spreadsheet would read as a
// formula are prefixed with a quote (validated entries never start so, but
// exports outlive validation rules).
func WriteCSV(w io.Writer, es []Entry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("ledger: export: %w", err)
	}
	for _, e := range es {
		rec := []string{e.Time.UTC().Format(time.RFC3339), e.Origin, string(e.Operation), e.CertSerial, e.SHA256, e.Result}
		for i, c := range rec {
			rec[i] = csvSafe(c)
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("ledger: export: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("ledger: export: %w", err)
	}
	return nil
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteJSON writes entries as an indented JSON array ([] when empty).
func WriteJSON(w io.Writer, es []Entry) error {
	if es == nil {
		es = []Entry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(es); err != nil {
		return fmt.Errorf("ledger: export: %w", err)
	}
	return nil
}
