// Package verifycmd is `cpsagent verify`: the relying-party checks of
// pkg/cpsverify on the command line, for portal developers and support.
//
//	cpsagent verify token --origin ORIGIN --nonce NONCE --ca FILE... [--crl FILE...] [--ocsp] [--require-policy OID...] [TOKEN.json|-]
//	cpsagent verify cades --ca FILE... [--crl FILE...] [--ocsp] [--require-policy OID...] (--document FILE | --digest SHA256) SIGNATURE.p7s
//
// Without the word token/cades the kind is taken from the flags (--origin
// or --nonce: token; --document or --digest: cades). With --crl the
// certificate's revocation is checked against the CRLs given, fail closed:
// a card certificate whose CA has no current CRL among them is refused.
// Nothing is downloaded. With --ocsp (or --ocsp-url) the OCSP responder
// the card certificate names (or the one given) is asked, over the
// network, fail closed too; with --crl as well, the CRLs are used when
// OCSP cannot tell. --require-policy refuses a card certificate that
// carries none of the certificate policy OIDs given. Exit status 0:
// valid; 1: the token or signature is refused; 2: usage or input error.
package verifycmd

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
	"github.com/cpsagent/cpsagent/pkg/cpsverify"
)

// Errors RunCommand returns; the caller maps them to exit statuses.
var (
	// ErrUsage: bad flags, unreadable or malformed input files (exit 2).
	ErrUsage = errors.New("usage")
	// ErrInvalid: the token or signature was checked and refused (exit 1).
	ErrInvalid = errors.New("verification failed")
)

// maxInput bounds the files read (tokens, .p7s); documents are read whole.
const maxInput = 16 << 20

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	kind      string // "token" or "cades"
	origin    string
	nonce     string
	document  string
	digest    string
	cas       listFlag
	crls      listFlag
	ocsp      bool
	ocspURL   string
	policies  listFlag
	testCards string
	at        string
	json      bool
	input     string
}

// RunCommand runs `cpsagent verify` with args (after the command name).
// The verdict goes to stdout; errors match ErrUsage or ErrInvalid.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	v, err := newVerifier(o)
	if err != nil {
		return err
	}
	if o.kind == "token" {
		return verifyToken(ctx, o, v, stdout)
	}
	return verifyCAdES(ctx, o, v, stdout)
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	if len(args) > 0 && (args[0] == "token" || args[0] == "cades") {
		o.kind, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("cpsagent verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.origin, "origin", "", "token: the portal `ORIGIN` the token must be bound to (https://host[:port])")
	fs.StringVar(&o.nonce, "nonce", "", "token: the challenge `NONCE` the portal issued")
	fs.StringVar(&o.document, "document", "", "cades: the signed document `FILE`")
	fs.StringVar(&o.digest, "digest", "", "cades: the document's SHA-256, hex or base64, instead of --document")
	fs.Var(&o.cas, "ca", "trust anchors `FILE`: PEM, DER or .p7b holding roots and intermediates (repeatable, required)")
	fs.Var(&o.crls, "crl", "check revocation against this CRL `FILE`, PEM or DER (repeatable; fail closed: a certificate whose CA has no current CRL is refused)")
	fs.BoolVar(&o.ocsp, "ocsp", false, "check revocation with the OCSP responder the card certificate names (network access; fail closed; with --crl, the CRLs serve when OCSP cannot tell)")
	fs.StringVar(&o.ocspURL, "ocsp-url", "", "ask this OCSP responder `URL` about the card certificate instead of the one it names (implies --ocsp)")
	fs.Var(&o.policies, "require-policy", "refuse a card certificate without this certificate policy `OID` (dotted, as 1.2.3.4; repeatable: one of them suffices; no IGC-Santé card policy OID is confirmed, see docs/integration.md)")
	fs.StringVar(&o.testCards, "test-cards", "refuse", "IGC-Santé test cards: refuse, allow or require")
	fs.StringVar(&o.at, "at", "", "check certificate validity (and CRL currency) at this `TIME` (RFC 3339) instead of now; not with --ocsp")
	fs.BoolVar(&o.json, "json", false, "print the verdict as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent verify token --origin ORIGIN --nonce NONCE --ca FILE [--crl FILE] [--ocsp] [flags] [TOKEN.json|-]")
		fmt.Fprintln(stderr, "       cpsagent verify cades --ca FILE [--crl FILE] [--ocsp] (--document FILE | --digest SHA256) [flags] SIGNATURE.p7s")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Exit status: 0 valid, 1 refused, 2 usage or input error.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	switch fs.NArg() {
	case 0:
	case 1:
		o.input = fs.Arg(0)
	default:
		return nil, fmt.Errorf("%w: one input file expected, got %d", ErrUsage, fs.NArg())
	}
	tokenFlags := o.origin != "" || o.nonce != ""
	cadesFlags := o.document != "" || o.digest != ""
	if o.kind == "" {
		switch {
		case tokenFlags && !cadesFlags:
			o.kind = "token"
		case cadesFlags && !tokenFlags:
			o.kind = "cades"
		default:
			return nil, fmt.Errorf("%w: say what to verify: 'verify token --origin O --nonce N FILE' or 'verify cades --document DOC FILE.p7s'", ErrUsage)
		}
	}
	if len(o.cas) == 0 {
		return nil, fmt.Errorf("%w: --ca is required (the roots the card must chain to, e.g. the IGC-Santé chain)", ErrUsage)
	}
	switch o.testCards {
	case "refuse", "allow", "require":
	default:
		return nil, fmt.Errorf("%w: --test-cards must be refuse, allow or require", ErrUsage)
	}
	if o.ocspURL != "" {
		if lower := strings.ToLower(o.ocspURL); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			return nil, fmt.Errorf("%w: --ocsp-url must be an http:// or https:// URL", ErrUsage)
		}
		o.ocsp = true
	}
	if o.ocsp && o.at != "" {
		return nil, fmt.Errorf("%w: --at cannot be used with --ocsp: a responder tells the status now, not at another time", ErrUsage)
	}
	switch o.kind {
	case "token":
		if cadesFlags {
			return nil, fmt.Errorf("%w: --document/--digest are for cades", ErrUsage)
		}
		if o.origin == "" || o.nonce == "" {
			return nil, fmt.Errorf("%w: a token is verified for an --origin and a --nonce", ErrUsage)
		}
		if o.input == "" {
			o.input = "-"
		}
	case "cades":
		if tokenFlags {
			return nil, fmt.Errorf("%w: --origin/--nonce are for tokens", ErrUsage)
		}
		if (o.document == "") == (o.digest == "") {
			return nil, fmt.Errorf("%w: give exactly one of --document and --digest", ErrUsage)
		}
		if o.input == "" {
			return nil, fmt.Errorf("%w: the .p7s file is required", ErrUsage)
		}
	}
	return o, nil
}

// singleNonce is a NonceStore that knows one nonce, given on the command
// line, and treats it as issued now: the command cannot know when the
// portal issued it or whether it was used before; the portal's own store
// checks that.
type singleNonce struct {
	nonce  string
	issued time.Time
	used   bool
}

func (s *singleNonce) Issue(context.Context) (string, error) {
	return "", errors.New("verifycmd: cannot issue nonces")
}

func (s *singleNonce) Consume(_ context.Context, n string) (time.Time, error) {
	switch {
	case n != s.nonce:
		return time.Time{}, cpsverify.ErrNonceUnknown
	case s.used:
		return time.Time{}, cpsverify.ErrNonceReplayed
	}
	s.used = true
	return s.issued, nil
}

func newVerifier(o *options) (*cpsverify.Verifier, error) {
	roots, inters, err := cpsverify.LoadTrust(o.cas...)
	if err != nil {
		return nil, fmt.Errorf("%w: --ca: %w", ErrUsage, err)
	}
	now := time.Now()
	if o.at != "" {
		if now, err = time.Parse(time.RFC3339, o.at); err != nil {
			return nil, fmt.Errorf("%w: --at: %w", ErrUsage, err)
		}
	}
	v := &cpsverify.Verifier{
		Roots:            roots,
		Intermediates:    inters,
		Now:              func() time.Time { return now },
		AllowTestCards:   o.testCards == "allow",
		RequireTestCards: o.testCards == "require",
	}
	for _, p := range o.policies {
		oid, err := parseOID(p)
		if err != nil {
			return nil, fmt.Errorf("%w: --require-policy: %w", ErrUsage, err)
		}
		v.RequiredPolicies = append(v.RequiredPolicies, oid)
	}
	var checkers cpsverify.FallbackChecker // fail closed
	if o.ocsp {
		checkers = append(checkers, &cpsverify.OCSPChecker{Query: cpsverify.HTTPOCSPQuery(nil, 0), ResponderURL: o.ocspURL})
	}
	if len(o.crls) > 0 {
		crls, err := cpsverify.LoadCRLs(o.crls...)
		if err != nil {
			return nil, fmt.Errorf("%w: --crl: %w", ErrUsage, err)
		}
		checkers = append(checkers, cpsverify.NewCRLChecker(crls...))
	}
	switch len(checkers) {
	case 0:
	case 1:
		v.Revocation = checkers[0]
	default:
		v.Revocation = checkers // OCSP, then the CRLs
	}
	if o.kind == "token" {
		v.AllowedOrigins = []string{o.origin}
		v.Nonces = &singleNonce{nonce: o.nonce, issued: now}
	}
	return v, nil
}

// parseOID reads a dotted object identifier such as 1.2.250.1.213.
func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return nil, fmt.Errorf("%q is not a dotted OID", s)
		}
		oid[i] = n
	}
	if len(oid) < 2 || oid[0] > 2 || oid[0] < 2 && oid[1] >= 40 {
		return nil, fmt.Errorf("%q is not a valid OID", s)
	}
	return oid, nil
}

func readInput(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrUsage, name, err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrUsage, name, maxInput)
	}
	return data, nil
}

// parseToken accepts the token itself or an object carrying it in a
// "token" member (what a portal page posts to its server).
func parseToken(data []byte) (cpsverify.AuthToken, error) {
	tok, err := cpsverify.ParseAuthToken(data)
	if err == nil {
		return tok, nil
	}
	var wrapper struct {
		Token json.RawMessage `json:"token"`
	}
	if json.Unmarshal(data, &wrapper) == nil && len(wrapper.Token) > 0 {
		if t2, err2 := cpsverify.ParseAuthToken(wrapper.Token); err2 == nil {
			return t2, nil
		}
	}
	return tok, err
}

// verdict is the --json output.
type verdict struct {
	Valid    bool            `json:"valid"`
	Kind     string          `json:"kind"`
	Reason   string          `json:"reason,omitempty"`
	Error    string          `json:"error,omitempty"`
	Origin   string          `json:"origin,omitempty"`
	Identity *cpsid.Identity `json:"identity,omitempty"`
	// Revocation is "not_revoked" when --crl or --ocsp was given and the
	// chain passed.
	Revocation   string `json:"revocation,omitempty"`
	revocationBy string // what checked it, for the human output
	// cades only
	SigningTime                 *time.Time `json:"signingTime,omitempty"`
	DigestAlgorithm             string     `json:"digestAlgorithm,omitempty"`
	SignatureAlgorithm          string     `json:"signatureAlgorithm,omitempty"`
	SigningCertificateAttribute string     `json:"signingCertificateAttribute,omitempty"`
	Chain                       []string   `json:"chain,omitempty"`
	Certificate                 *certView  `json:"certificate,omitempty"`
}

type certView struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serialNumber"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

func viewOf(c *x509.Certificate) *certView {
	if c == nil {
		return nil
	}
	return &certView{Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: c.SerialNumber.Text(16), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

func verifyToken(ctx context.Context, o *options, v *cpsverify.Verifier, stdout io.Writer) error {
	data, err := readInput(o.input)
	if err != nil {
		return err
	}
	out := verdict{Kind: "token", Origin: o.origin}
	tok, err := parseToken(data)
	var id *cpsid.Identity
	if err == nil {
		id, err = v.VerifyAuthToken(ctx, tok, o.origin, o.nonce)
	}
	if err == nil {
		out.Valid, out.Identity = true, id
		out.Revocation, out.revocationBy = revocationOf(o)
		if der, derr := base64.StdEncoding.DecodeString(tok.UnverifiedCertificate); derr == nil {
			if c, cerr := x509.ParseCertificate(der); cerr == nil {
				out.Certificate = viewOf(c)
			}
		}
	} else {
		out.Reason, out.Error = reason(err), err.Error()
	}
	return report(stdout, o.json, out)
}

func verifyCAdES(ctx context.Context, o *options, v *cpsverify.Verifier, stdout io.Writer) error {
	p7s, err := readInput(o.input)
	if err != nil {
		return err
	}
	out := verdict{Kind: "cades"}
	var rep *cpsverify.SignatureReport
	if o.document != "" {
		doc, err := os.ReadFile(o.document)
		if err != nil {
			return fmt.Errorf("%w: --document: %w", ErrUsage, err)
		}
		rep, err = v.VerifyCAdES(ctx, p7s, doc)
		if err != nil {
			out.Reason, out.Error = reason(err), err.Error()
		}
	} else {
		d, derr := parseDigest(o.digest)
		if derr != nil {
			return derr
		}
		rep, err = v.VerifyCAdESDigest(ctx, p7s, d)
		if err != nil {
			out.Reason, out.Error = reason(err), err.Error()
		}
	}
	if out.Error == "" && rep != nil {
		out.Valid = true
		out.Revocation, out.revocationBy = revocationOf(o)
		out.Identity = rep.Signer
		out.SigningTime = rep.SigningTime
		out.DigestAlgorithm = rep.DigestAlgorithm
		out.SignatureAlgorithm = rep.SignatureAlgorithm
		out.SigningCertificateAttribute = rep.SigningCertificateAttribute
		out.Certificate = viewOf(rep.Certificate)
		for _, c := range rep.Chain {
			out.Chain = append(out.Chain, c.Subject.CommonName)
		}
	}
	return report(stdout, o.json, out)
}

// revocationOf is the Revocation of a valid verdict, and what checked it.
func revocationOf(o *options) (string, string) {
	switch {
	case o.ocsp && len(o.crls) > 0:
		return "not_revoked", "by OCSP, else the CRLs given"
	case o.ocsp:
		return "not_revoked", "by OCSP"
	case len(o.crls) > 0:
		return "not_revoked", "against the CRLs given"
	}
	return "", ""
}

// parseDigest reads a SHA-256 given as 64 hex digits or base64.
func parseDigest(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, fmt.Errorf("%w: --digest must be a SHA-256 (64 hex digits or base64)", ErrUsage)
}

// reason gives a stable short name for a verification error.
func reason(err error) string {
	switch {
	case errors.Is(err, cpsverify.ErrNonceReplayed):
		return "nonce_replayed"
	case errors.Is(err, cpsverify.ErrNonceExpired):
		return "nonce_expired"
	case errors.Is(err, cpsverify.ErrNonce):
		return "nonce_unknown"
	case errors.Is(err, cpsverify.ErrOriginMismatch):
		return "origin_mismatch"
	case errors.Is(err, cpsverify.ErrCertificateExpired):
		return "certificate_expired"
	case errors.Is(err, cpsverify.ErrCertificateNotYetValid):
		return "certificate_not_yet_valid"
	case errors.Is(err, cpsverify.ErrCertificateUntrusted):
		return "certificate_untrusted"
	case errors.Is(err, cpsverify.ErrRevoked):
		return "certificate_revoked"
	case errors.Is(err, cpsverify.ErrRevocationUnknown):
		return "revocation_unknown"
	case errors.Is(err, cpsverify.ErrKeyUsage):
		return "key_usage"
	case errors.Is(err, cpsverify.ErrCertificatePolicy):
		return "certificate_policy"
	case errors.Is(err, cpsverify.ErrTestCard):
		return "test_card"
	case errors.Is(err, cpsverify.ErrProductionCard):
		return "production_card"
	case errors.Is(err, cpsverify.ErrDigestMismatch):
		return "digest_mismatch"
	case errors.Is(err, cpsverify.ErrSigningCertificate):
		return "signing_certificate"
	case errors.Is(err, cpsverify.ErrSigningTime):
		return "signing_time"
	case errors.Is(err, cpsverify.ErrSignature):
		return "signature_invalid"
	case errors.Is(err, cpsverify.ErrUnsupportedAlgorithm):
		return "unsupported_algorithm"
	case errors.Is(err, cpsverify.ErrFormat):
		return "malformed"
	}
	return "failed"
}

func report(w io.Writer, asJSON bool, v verdict) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		printHuman(w, v)
	}
	if !v.Valid {
		return fmt.Errorf("%w: %s", ErrInvalid, v.Reason)
	}
	return nil
}

func printHuman(w io.Writer, v verdict) {
	what := map[string]string{"token": "authentication token", "cades": "CAdES signature"}[v.Kind]
	if !v.Valid {
		fmt.Fprintf(w, "INVALID %s: %s\n", what, v.Reason)
		fmt.Fprintf(w, "  %s\n", v.Error)
		return
	}
	fmt.Fprintf(w, "VALID %s\n", what)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, val string) {
		if val != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, val)
		}
	}
	row("origin", v.Origin)
	if id := v.Identity; id != nil {
		row("holder", strings.TrimSpace(id.GivenName+" "+id.FamilyName))
		nid := id.NationalID
		switch {
		case id.RPPS != nil:
			nid += " (RPPS " + *id.RPPS + ")"
		case id.ADELI != nil:
			nid += " (ADELI " + *id.ADELI + ")"
		}
		row("national id", nid)
		if id.Profession != nil {
			row("profession", id.Profession.Label)
		}
		card := ""
		if id.Card.Type != nil {
			card = *id.Card.Type
		}
		if id.Card.Test {
			card = strings.TrimSpace(card + " (test card)")
		}
		row("card", card)
	}
	if v.SigningTime != nil {
		row("signing time", v.SigningTime.UTC().Format(time.RFC3339)+" (claimed by the signer)")
	}
	if v.DigestAlgorithm != "" {
		row("algorithms", v.DigestAlgorithm+", "+v.SignatureAlgorithm+", signing-certificate-"+v.SigningCertificateAttribute)
	}
	if c := v.Certificate; c != nil {
		row("certificate", "serial "+c.Serial+", valid "+c.NotBefore.Format("2006-01-02")+" to "+c.NotAfter.Format("2006-01-02"))
		row("issuer", c.Issuer)
	}
	if len(v.Chain) > 0 {
		row("chain", strings.Join(v.Chain, " → "))
	}
	if v.Revocation != "" {
		row("revocation", "not revoked (checked "+v.revocationBy+")")
	}
	_ = tw.Flush()
}
