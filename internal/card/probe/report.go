package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// ReportFormat names the report's JSON layout; it changes when a field
// changes meaning.
const ReportFormat = "cpsagent-probe/1"

// Statement is what the probe announces before it starts, and repeats in
// the report (French, then English).
const Statement = "Sonde en lecture seule : elle n'envoie jamais de code PIN ni de code de déblocage (aucune VERIFY\n" +
	"avec données), ne modifie aucun compteur, ne signe rien et n'écrit rien sur la carte.\n" +
	"Read-only probe: it never sends a PIN or PUK (no VERIFY with data), never changes a counter,\n" +
	"never signs and never writes to the card. Commands allowed: SELECT, READ BINARY, READ RECORD,\n" +
	"GET DATA, GET RESPONSE, VERIFY without data (reads the tries left), MANAGE CHANNEL (open)."

// Verdicts of a fact.
const (
	// Confirms: this card answered as the quirks in use assume.
	Confirms = "confirms"
	// Contradicts: this card answered otherwise; Suggested holds the fix.
	Contradicts = "contradicts"
	// Answered: an open question (no assumption) that this card answered.
	Answered = "answered"
	// Inconclusive: the read-only commands did not settle it.
	Inconclusive = "inconclusive"
	// NotTestable: settling it needs a PIN, a counter change or a key
	// operation, which the probe never does.
	NotTestable = "not-testable-read-only"
)

// Report is the probe's result, written as JSON (docs/field-test.md).
type Report struct {
	Format string    `json:"format"`
	Tool   string    `json:"tool"`
	Time   time.Time `json:"time"`
	Reader string    `json:"reader"`
	// Masked is true unless --unmasked: serial numbers, national ids and
	// the holder's names are replaced by '*'.
	Masked bool      `json:"masked"`
	Safety Safety    `json:"safety"`
	ATR    ATRReport `json:"atr"`
	// Serial is the card number as the agent reads it (masked).
	Serial string `json:"serial,omitempty"`
	// Profile is the agent's card profile for this ATR ("CPS3", "CPS4",
	// "CPS3-CL") or "" when the agent does not support the card.
	Profile string       `json:"profile,omitempty"`
	Files   []FileReport `json:"files"`
	// AppDF is the application DF that SELECT by AID reported (FCP 83),
	// as a hex path from the MF; "" when unknown.
	AppDF  string       `json:"appDf,omitempty"`
	PKCS15 PKCS15Report `json:"pkcs15"`
	CHVs   []CHVReport  `json:"chvs"`
	// SEs are the security environments of the MF (GET DATA).
	SEs []SEReport `json:"securityEnvironments"`
	// KeySDOs are the RSA private key SDOs' public descriptions (GET DATA
	// of their DOCP in the application DF).
	KeySDOs []KeySDOReport `json:"keySdos"`
	// AgentReads runs the agent's own read-only flows (serial,
	// certificates, PIN and PUK status) through the guard, with the quirks
	// in use and with the suggested ones.
	AgentReads []AgentRead  `json:"agentReads"`
	Facts      []Fact       `json:"facts"`
	Quirks     QuirksReport `json:"quirks"`
	// Trace lists every command (never a secret: the guard refuses them)
	// with its status word and response length.
	Trace []Exchange `json:"trace"`
}

// Safety records what the guard let through.
type Safety struct {
	Statement string   `json:"statement"`
	Allowed   []string `json:"allowedInstructions"`
	Sent      int      `json:"commandsSent"`
	// Refused counts commands the guard stopped (0 unless the probe has a
	// bug; they never reached the card).
	Refused int `json:"commandsRefused"`
}

// ATRReport is the ATR, decoded and recognised.
type ATRReport struct {
	Hex        string   `json:"hex"`
	Decoded    *ATRInfo `json:"decoded,omitempty"`
	Error      string   `json:"error,omitempty"`
	Generation string   `json:"generation"`
	Supported  bool     `json:"supported"`
	// Matched names the agent's ATR table entry that matched.
	Matched string `json:"matched,omitempty"`
}

// FileReport is one file the probe selected (and read).
type FileReport struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// SW is the status of the SELECT ("90 00", "6A 82", ...).
	SW  string   `json:"sw"`
	FCP *FCPInfo `json:"fcp,omitempty"`
	// Size is the number of bytes read (-1 when not read).
	Size int `json:"size"`
	// Content is the file in hex; masked bytes are "**". Empty for files
	// the probe does not print (certificates: see PKCS15.Certificates).
	Content string `json:"content,omitempty"`
	Error   string `json:"error,omitempty"`
}

// FCPInfo is the part of an FCP the report shows.
type FCPInfo struct {
	Size           int    `json:"size"`
	Descriptor     string `json:"descriptor"`
	FID            string `json:"fid,omitempty"`
	DFName         string `json:"dfName,omitempty"`
	SFI            int    `json:"sfi,omitempty"`
	LCS            string `json:"lcs,omitempty"`
	ContactACL     string `json:"contactAcl,omitempty"`
	ContactlessACL string `json:"contactlessAcl,omitempty"`
}

// PKCS15Report is the PKCS#15 directory of the application.
type PKCS15Report struct {
	ODF          []ODFEntry   `json:"odf"`
	PINs         []PINObject  `json:"pins"`
	PrivateKeys  []KeyObject  `json:"privateKeys"`
	Certificates []CertReport `json:"certificates"`
}

// CertReport is one certificate the CDF lists.
type CertReport struct {
	Label    string   `json:"label,omitempty"`
	ID       string   `json:"id,omitempty"`
	Path     string   `json:"path"`
	Size     int      `json:"size"`
	Role     string   `json:"role"` // authentication, signature, ca, unknown
	KeyUsage []string `json:"keyUsage"`
	IsCA     bool     `json:"isCa"`
	Bits     int      `json:"modulusBits,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	// Subject is shown only with --unmasked (it holds the national id).
	Subject  string    `json:"subject,omitempty"`
	NotAfter time.Time `json:"notAfter,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// CHVReport is what the probe read about the PIN or the PUK.
type CHVReport struct {
	Name   string `json:"name"` // PIN, PUK
	SDORef string `json:"sdoRef"`
	// DOCP is GET DATA of the CHV's DOCP before the status queries,
	// DOCPAfter after them: equal counters prove they consumed nothing.
	DOCP      *DOCPInfo `json:"docp,omitempty"`
	DOCPAfter *DOCPInfo `json:"docpAfter,omitempty"`
	DOCPError string    `json:"docpError,omitempty"`
	// Sizes is GET DATA of 7F41 (80 max, 81 min size of the stored value).
	Sizes      *CHVSizes     `json:"publicData,omitempty"`
	SizesError string        `json:"publicDataError,omitempty"`
	Status     []StatusQuery `json:"statusQueries"`
}

// DOCPInfo is a CHV DOCP's counters and access rules.
type DOCPInfo struct {
	MaxTries  int    `json:"maxTries"`
	TriesLeft int    `json:"triesLeft"`
	UsesLeft  int    `json:"usesLeft"`
	ACL       string `json:"acl,omitempty"`
}

// StatusQuery is one VERIFY without data.
type StatusQuery struct {
	DF      string `json:"df"` // "MF", "application DF", "applet"
	Command string `json:"command"`
	SW      string `json:"sw"`
	Meaning string `json:"meaning"`
}

// SEReport is one security environment.
type SEReport struct {
	Ref   int    `json:"ref"`
	SW    string `json:"sw"`
	SE    *SE    `json:"se,omitempty"`
	Error string `json:"error,omitempty"`
}

// KeySDOReport is the DOCP of an RSA private key SDO.
type KeySDOReport struct {
	SDORef string `json:"sdoRef"`
	SW     string `json:"sw"`
	// Size is tag 80 of the DOCP as the card gives it (bytes on the
	// virtual card; OpenSC reads it as bytes for PSO DST).
	Size int    `json:"size,omitempty"`
	ACL  string `json:"acl,omitempty"`
}

// AgentRead is one run of the agent's read-only flows.
type AgentRead struct {
	Quirks    string `json:"quirks"` // "in use" or "suggested"
	Operation string `json:"operation"`
	OK        bool   `json:"ok"`
	APDUs     int    `json:"apdus"`
	Result    string `json:"result,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Fact is one [?] fact of card-cpx.md and what this card says about it.
type Fact struct {
	ID       string `json:"id"`
	Doc      string `json:"doc"`
	Question string `json:"question"`
	// Quirks are the quirks-file keys that hold the fact.
	Quirks []string `json:"quirks,omitempty"`
	// Assumed is what the quirks in use (or the agent) assume.
	Assumed string `json:"assumed"`
	// Observed is what this card answered.
	Observed string   `json:"observed"`
	Evidence []string `json:"evidence,omitempty"`
	Verdict  string   `json:"verdict"`
	// Suggested maps quirks-file keys to the JSON value that fits this card
	// (only for a contradiction).
	Suggested map[string]json.RawMessage `json:"suggested,omitempty"`
	Note      string                     `json:"note,omitempty"`
}

// QuirksReport gives the quirks in use and those that fit this card.
type QuirksReport struct {
	Source string          `json:"source"`
	InUse  json.RawMessage `json:"inUse"`
	// Suggested is the complete quirks file that fits this card.
	Suggested json.RawMessage `json:"suggested"`
	// Changed lists the keys where Suggested differs from InUse.
	Changed []string `json:"changed"`
	// PolicyFile is what to put in the policy directory's quirks.json:
	// only the keys that differ from the shipped defaults ({} when none).
	PolicyFile json.RawMessage `json:"policyFile"`
}

// Counts returns how many facts have each verdict.
func (r *Report) Counts() map[string]int {
	m := map[string]int{}
	for _, f := range r.Facts {
		m[f.Verdict]++
	}
	return m
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteSummary writes the human summary: card, facts with verdicts, and
// the quirks file that fits this card.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "Card in %q: ATR %s\n", r.Reader, r.ATR.Hex)
	gen := r.ATR.Generation
	if r.ATR.Matched != "" {
		gen += " (" + r.ATR.Matched + ")"
	}
	fmt.Fprintf(w, "  generation: %s, supported by the agent: %v\n", gen, r.ATR.Supported)
	if r.Serial != "" {
		fmt.Fprintf(w, "  serial:     %s\n", r.Serial)
	}
	fmt.Fprintf(w, "  commands:   %d sent, %d refused by the read-only guard\n\n", r.Safety.Sent, r.Safety.Refused)
	fmt.Fprintln(w, "Facts (card-cpx.md §8):")
	for _, f := range r.Facts {
		fmt.Fprintf(w, "  %-27s %-23s %s\n", f.ID, f.Verdict, oneLine(f.Observed, 90))
		for _, k := range sortedKeys(f.Suggested) {
			fmt.Fprintf(w, "  %-27s %-23s -> %s: %s\n", "", "", k, f.Suggested[k])
		}
	}
	c := r.Counts()
	fmt.Fprintf(w, "\n%d confirm, %d contradict, %d answered, %d inconclusive, %d not testable without a PIN\n",
		c[Confirms], c[Contradicts], c[Answered], c[Inconclusive], c[NotTestable])
	for _, a := range r.AgentReads {
		status := "ok"
		if !a.OK {
			status = "FAILED: " + a.Error
		}
		fmt.Fprintf(w, "  agent %-12s with the quirks %-9s %s\n", a.Operation, a.Quirks, oneLine(status, 100))
	}
	fmt.Fprintln(w)
	if len(r.Quirks.Changed) == 0 {
		fmt.Fprintf(w, "The quirks in use (%s) fit this card as far as read-only commands can tell.\n", r.Quirks.Source)
	} else {
		fmt.Fprintf(w, "The quirks in use (%s) do NOT fit this card: %s.\n", r.Quirks.Source, strings.Join(r.Quirks.Changed, ", "))
	}
	fmt.Fprintln(w, "Quirks file that makes this card work (policy directory quirks.json, keys that differ from the shipped defaults):")
	fmt.Fprintf(w, "%s\n", r.Quirks.PolicyFile)
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// maskSerial keeps the first two and the last two characters.
func maskSerial(s string) string {
	if len(s) <= 4 {
		return strings.Repeat("*", len(s))
	}
	return s[:2] + strings.Repeat("*", len(s)-4) + s[len(s)-2:]
}

// maskDigits replaces every run of five or more decimal digits by '*'
// (labels such as "CPS3v3-2900995266" carry the serial; national ids are
// 9 to 11 digits).
func maskDigits(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j-i >= 5 {
			for k := i; k < j; k++ {
				b[k] = '*'
			}
		}
		if j == i {
			j++
		}
		i = j
	}
	return string(b)
}
