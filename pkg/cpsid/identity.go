package cpsid

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by FromCertificates. Everything that is merely unusual
// (bad check digit, unknown profession label, undecodable card type …) is
// reported in Identity.Warnings instead.
var (
	ErrNoCertificate  = errors.New("cpsid: no certificate")
	ErrNoNationalID   = errors.New("cpsid: certificate subject has no CN (national identifier)")
	ErrHolderMismatch = errors.New("cpsid: authentication and signature certificates name different holders")
	ErrMalformedName  = errors.New("cpsid: malformed distinguished name")
)

// Version is the value of Identity.Version produced by this package.
const Version = 1

// SourceCard is Identity.Source for identities read from a card.
const SourceCard = "cps-card"

var (
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSN    = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidO     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidTitle = asn1.ObjectIdentifier{2, 5, 4, 12}
	oidGN    = asn1.ObjectIdentifier{2, 5, 4, 42}
)

// CardInfo is what the card layer knows beyond the certificates.
type CardInfo struct {
	// SerialNumber is the card number; a leading ANS issuer id 8025000001
	// (EF.SN.ICC) is stripped.
	SerialNumber string
	// Generation is "CPS3", "CPS4" … as detected from the ATR or driver.
	Generation string
	// ReadAt is when the certificates were read. Zero means unknown.
	ReadAt time.Time
}

// Identity is the card holder identity sent to portals (identity.md §8).
// Its JSON encoding is part of the public API: field names and order are
// fixed, absent values are null.
type Identity struct {
	Version        int          `json:"version"`
	Source         string       `json:"source"`
	NationalID     string       `json:"nationalId"`
	NationalIDType Code         `json:"nationalIdType"`
	RPPS           *string      `json:"rpps"`
	ADELI          *string      `json:"adeli"`
	StructureID    *string      `json:"structureId"`
	InternalID     *string      `json:"internalId"`
	FamilyName     string       `json:"familyName"`
	GivenName      string       `json:"givenName"`
	Profession     *Profession  `json:"profession"`
	Card           Card         `json:"card"`
	Certificates   Certificates `json:"certificates"`
	PSC            PSC          `json:"psc"`
	ReadAt         *time.Time   `json:"readAt"`
	// Warnings lists anomalies found while parsing (bad check digit,
	// unknown label, guessed card type …). Omitted when empty.
	Warnings []string `json:"warnings,omitempty"`
}

// Code is a nomenclature code with its label.
type Code struct {
	Code  string `json:"code"`
	Label string `json:"label"`
}

// Profession is the certificate title with its TRE_G15 code when the label
// is found in the table (Code and System are null otherwise, e.g. for staff
// cards whose title is not a health profession).
type Profession struct {
	Code   *string `json:"code"`
	Label  string  `json:"label"`
	System *string `json:"system"`
}

// Card describes the card itself.
type Card struct {
	// Type is the TRE_R87 code: CPS, CPF, CPE or CPA; null when unknown.
	Type *string `json:"type"`
	// TypeCode is the TRE_G02 code "00".."03"; null when unknown.
	TypeCode *string `json:"typeCode"`
	// TypeSource is TypeSourceExtension or TypeSourceHeuristic.
	TypeSource   string  `json:"typeSource"`
	SerialNumber *string `json:"serialNumber"`
	Generation   *string `json:"generation"`
	// Test is true for cards of the IGC-Santé test PKI (or legacy O=TEST).
	Test bool `json:"test"`
}

// Certificates holds the two card certificates; either may be null.
type Certificates struct {
	Authentication *CertInfo `json:"authentication"`
	Signature      *CertInfo `json:"signature"`
}

// CertInfo is the raw X.509 view of one certificate.
type CertInfo struct {
	SubjectDN string `json:"subjectDN"`
	IssuerDN  string `json:"issuerDN"`
	// IssuerLevel is FORT, STANDARD or ELEMENTAIRE from the issuer CN; null
	// for other CAs.
	IssuerLevel  *string   `json:"issuerLevel"`
	SerialNumber string    `json:"serialNumber"` // lowercase hex
	SHA256       string    `json:"sha256"`       // lowercase hex of the DER
	DER          string    `json:"der"`          // standard base64
	NotBefore    time.Time `json:"notBefore"`
	NotAfter     time.Time `json:"notAfter"`
	KeyUsage     []string  `json:"keyUsage"`
	ExtKeyUsage  []string  `json:"extKeyUsage"`
	PolicyOIDs   []string  `json:"policyOids"`
}

// PSC is a Pro Santé Connect compatible view built only from card fields.
type PSC struct {
	SubjectNameID     string     `json:"SubjectNameID"`
	PreferredUsername string     `json:"preferred_username"`
	GivenName         string     `json:"given_name"`
	FamilyName        string     `json:"family_name"`
	SubjectRefPro     *PSCRefPro `json:"SubjectRefPro,omitempty"`
}

// PSCRefPro mirrors PSC's SubjectRefPro, limited to the profession code.
type PSCRefPro struct {
	Exercices []PSCExercice `json:"exercices"`
}

// PSCExercice mirrors one PSC exercice.
type PSCExercice struct {
	CodeProfession string `json:"codeProfession"`
}

// FromCertificate builds an identity from one card certificate. A
// certificate whose key usage is nonRepudiation without digitalSignature is
// taken as the signature certificate, any other as the authentication one.
func FromCertificate(cert *x509.Certificate) (*Identity, error) {
	if cert == nil {
		return nil, ErrNoCertificate
	}
	if isSignatureCert(cert) {
		return FromCertificates(nil, cert, CardInfo{})
	}
	return FromCertificates(cert, nil, CardInfo{})
}

func isSignatureCert(c *x509.Certificate) bool {
	return c.KeyUsage&x509.KeyUsageContentCommitment != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0
}

// FromCertificates builds the holder identity from the authentication and
// signature certificates of one card (either may be nil, not both). Holder
// fields come from the authentication certificate when present; if both are
// given they must name the same holder (same CN, SN and GN).
func FromCertificates(auth, sign *x509.Certificate, card CardInfo) (*Identity, error) {
	primary := auth
	if primary == nil {
		primary = sign
	}
	if primary == nil {
		return nil, ErrNoCertificate
	}
	b := &builder{}
	subj := b.subject(primary)
	if subj.cn == "" {
		return nil, ErrNoNationalID
	}
	if auth != nil && sign != nil {
		other := (&builder{}).subject(sign)
		if other.cn != subj.cn || other.sn != subj.sn || other.gn != subj.gn {
			return nil, fmt.Errorf("%w: %q vs %q", ErrHolderMismatch, subj.cn, other.cn)
		}
		if isSignatureCert(auth) {
			b.warn("certificates: the authentication certificate has signature-only key usage")
		}
		if sign.KeyUsage&x509.KeyUsageContentCommitment == 0 {
			b.warn("certificates: the signature certificate lacks nonRepudiation key usage")
		}
	}

	id := &Identity{
		Version:    Version,
		Source:     SourceCard,
		NationalID: subj.cn,
		FamilyName: subj.sn,
		GivenName:  subj.gn,
	}
	b.nationalID(id, subj)
	b.cardType(id, auth, sign)
	b.profession(id, subj)
	id.Card.Test = isTestCert(primary)
	if auth != nil && sign != nil && isTestCert(auth) != isTestCert(sign) {
		b.warn("card: only one of the two certificates comes from a test PKI")
	}
	if s := normaliseCardSerial(card.SerialNumber); s != "" {
		id.Card.SerialNumber = &s
	}
	if card.Generation != "" {
		g := card.Generation
		id.Card.Generation = &g
	}
	var err error
	if id.Certificates.Authentication, err = certInfo(auth); err != nil {
		return nil, err
	}
	if id.Certificates.Signature, err = certInfo(sign); err != nil {
		return nil, err
	}
	id.PSC = PSC{
		SubjectNameID:     id.NationalID,
		PreferredUsername: id.NationalID,
		GivenName:         id.GivenName,
		FamilyName:        id.FamilyName,
	}
	if id.Profession != nil && id.Profession.Code != nil {
		id.PSC.SubjectRefPro = &PSCRefPro{Exercices: []PSCExercice{{CodeProfession: *id.Profession.Code}}}
	}
	if !card.ReadAt.IsZero() {
		t := card.ReadAt.UTC().Truncate(time.Second)
		id.ReadAt = &t
	}
	id.Warnings = b.warnings
	return id, nil
}

type builder struct {
	warnings []string
}

func (b *builder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

type subjectFields struct {
	cn, sn, gn, title string
	ou, o             []string
}

// subject reads the holder attributes by OID from every RDN of the subject
// (the CPS layout puts SN, GN and CN in one multi-valued RDN).
func (b *builder) subject(c *x509.Certificate) subjectFields {
	var f subjectFields
	set := func(dst *string, name string, v string) {
		if *dst != "" {
			b.warn("subject: several %s values, the first one is used", name)
			return
		}
		*dst = v
	}
	for _, atv := range c.Subject.Names {
		v, ok := atv.Value.(string)
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case atv.Type.Equal(oidCN):
			set(&f.cn, "CN", v)
		case atv.Type.Equal(oidSN):
			set(&f.sn, "SN", v)
		case atv.Type.Equal(oidGN):
			set(&f.gn, "GN", v)
		case atv.Type.Equal(oidTitle):
			set(&f.title, "title", v)
		case atv.Type.Equal(oidOU):
			f.ou = append(f.ou, v)
		case atv.Type.Equal(oidO):
			f.o = append(f.o, v)
		}
	}
	return f
}

var (
	reRPPS  = regexp.MustCompile(`^[0-9]{11}$`)
	reADELI = regexp.MustCompile(`^[0-9A-Z]{9}$`)
	// reStructureOU is a TRE_G07 prefix followed by an identifier.
	reStructureOU = regexp.MustCompile(`^[0-4][0-9A-Z]{8,14}$`)
)

// nationalID splits the CN (identity.md §1.4) and fills the id fields.
func (b *builder) nationalID(id *Identity, f subjectFields) {
	cn := f.cn
	r, size := utf8.DecodeRuneInString(cn)
	typ := byte(0)
	if r < utf8.RuneSelf {
		typ = byte(r)
	}
	label, known := nationalIDTypes[typ]
	id.NationalIDType = Code{Code: string(r), Label: label}
	if !known {
		b.warn("nationalId: unknown identifier type %q", string(r))
	}
	body := cn[size:]
	switch {
	case typ == '8':
		v := body
		id.RPPS = &v
		switch {
		case !reRPPS.MatchString(v):
			b.warn("rpps: %d characters, expected 11 digits", len(v))
		case !Luhn(v):
			b.warn("rpps: Luhn check digit mismatch")
		}
	case typ == '0':
		v := body
		id.ADELI = &v
		if !reADELI.MatchString(v) {
			b.warn("adeli: expected 9 characters [0-9A-Z]")
		}
	case typ == '2' || typ == '9':
		b.warn("nationalId: identifier type %q is deprecated since 2020", string(typ))
	case isStructureIDType(typ):
		structure, internal, ok := strings.Cut(body, "/")
		if !ok {
			b.warn("nationalId: type %q should read <structure>/<internal id>", string(typ))
		}
		if structure != "" {
			id.StructureID = &structure
		}
		if ok && internal != "" {
			id.InternalID = &internal
		}
	}
	// Structure id from OU (TRE_G07 prefix + identifier). The CN wins when
	// both are present; a disagreement is reported.
	for _, ou := range f.ou {
		if _, isProfession := ProfessionCode(ou); isProfession || !reStructureOU.MatchString(ou) {
			continue
		}
		if _, ok := structureIDTypes[ou[0]]; !ok {
			continue
		}
		v := ou[1:]
		switch {
		case id.StructureID == nil:
			id.StructureID = &v
		case *id.StructureID != v:
			b.warn("structureId: CN gives %q, OU gives %q", *id.StructureID, v)
		}
		break
	}
}

// profession maps the title (or, on legacy cards, an OU holding a
// profession label) to TRE_G15.
func (b *builder) profession(id *Identity, f subjectFields) {
	label := f.title
	if label == "" {
		for _, ou := range f.ou {
			if _, ok := ProfessionCode(ou); ok {
				label = ou
				b.warn("profession: read from OU (legacy layout)")
				break
			}
		}
	}
	if label == "" {
		return
	}
	p := &Profession{Label: label}
	staff := isStructureIDType(id.NationalIDType.Code[0]) ||
		(id.Card.Type != nil && (*id.Card.Type == "CPE" || *id.Card.Type == "CPA"))
	if code, ok := ProfessionCode(label); ok && staff {
		// CPE/CPA holders are not registered health professionals: a
		// profession code would be read as one.
		b.warn("profession: %q is a TRE_G15 label but the card is a staff card; no code given", label)
	} else if ok {
		sys := SystemTREG15
		p.Code, p.System = &code, &sys
	} else if isPersonalIDType(id.NationalIDType.Code[0]) {
		b.warn("profession: label %q not found in TRE_G15", label)
	}
	id.Profession = p
}

// cardType reads the card family from the certificate extension (signature
// certificate first, as the GIE SESAM-Vitale sample does), else guesses.
func (b *builder) cardType(id *Identity, auth, sign *x509.Certificate) {
	code, found := -1, false
	for _, c := range []*x509.Certificate{sign, auth} {
		v, ok, err := cardTypeFromExtension(c)
		if err != nil {
			b.warn("card: %v", err)
			continue
		}
		if !ok {
			continue
		}
		if found && v != code {
			b.warn("card: the two certificates carry different card types (%d, %d)", code, v)
			continue
		}
		code, found = v, true
	}
	if found {
		id.Card.TypeSource = TypeSourceExtension
		tc := fmt.Sprintf("%02d", code)
		id.Card.TypeCode = &tc
		if t, ok := cardTypes[code]; ok {
			id.Card.Type = &t
		} else {
			b.warn("card: unknown TRE_G02 card type code %d", code)
		}
		if id.Card.Type != nil {
			personal := *id.Card.Type == "CPS" || *id.Card.Type == "CPF"
			if personal != isPersonalIDType(id.NationalIDType.Code[0]) {
				b.warn("card: type %s does not match identifier type %s", *id.Card.Type, id.NationalIDType.Code)
			}
		}
		return
	}

	id.Card.TypeSource = TypeSourceHeuristic
	var guess string
	typ := id.NationalIDType.Code[0]
	switch {
	case isPersonalIDType(typ):
		guess = "CPS"
		b.warn("card: no card-type extension; CPS assumed (a CPF cannot be told apart)")
	case isStructureIDType(typ):
		if id.InternalID != nil {
			for _, h := range heuristicInternalIDPrefixes {
				if strings.HasPrefix(strings.ToUpper(*id.InternalID), h.prefix) {
					guess = h.cardType
					break
				}
			}
		}
		if guess == "" {
			b.warn("card: no card-type extension; CPE or CPA, cannot tell which")
		} else {
			b.warn("card: no card-type extension; %s guessed from the internal id", guess)
		}
	default:
		b.warn("card: no card-type extension and unknown identifier type")
	}
	if guess != "" {
		tc := cardTypeCodes[guess]
		id.Card.Type, id.Card.TypeCode = &guess, &tc
	}
}

func isTestCert(c *x509.Certificate) bool {
	for _, ou := range c.Issuer.OrganizationalUnit {
		if strings.Contains(strings.ToUpper(ou), testIssuerOU) {
			return true
		}
	}
	if strings.HasPrefix(strings.ToUpper(c.Issuer.CommonName), testIssuerCNPrefix) {
		return true
	}
	for _, o := range append(append([]string(nil), c.Issuer.Organization...), c.Subject.Organization...) {
		if strings.EqualFold(strings.TrimSpace(o), legacyTestO) {
			return true
		}
	}
	return false
}

// IssuerLevel returns FORT, STANDARD or ELEMENTAIRE from an IGC-Santé CA
// common name, or "" when none applies.
func IssuerLevel(issuerCN string) string {
	u := strings.ToUpper(accentFold.Replace(strings.ToLower(issuerCN)))
	if !strings.Contains(u, "IGC-SANTE") {
		return ""
	}
	for _, l := range issuerLevels {
		if strings.Contains(u, l.word) {
			return l.level
		}
	}
	return ""
}

func normaliseCardSerial(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > len(cardIssuerID) && strings.HasPrefix(s, cardIssuerID) {
		return s[len(cardIssuerID):]
	}
	return s
}

var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "nonRepudiation"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "any",
	x509.ExtKeyUsageServerAuth:      "serverAuth",
	x509.ExtKeyUsageClientAuth:      "clientAuth",
	x509.ExtKeyUsageCodeSigning:     "codeSigning",
	x509.ExtKeyUsageEmailProtection: "emailProtection",
	x509.ExtKeyUsageTimeStamping:    "timeStamping",
	x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
	x509.ExtKeyUsageIPSECEndSystem:  "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:     "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:       "ipsecUser",
}

func certInfo(c *x509.Certificate) (*CertInfo, error) {
	if c == nil {
		return nil, nil
	}
	subject, err := FormatDN(c.RawSubject)
	if err != nil {
		return nil, fmt.Errorf("%w: subject: %w", ErrMalformedName, err)
	}
	issuer, err := FormatDN(c.RawIssuer)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer: %w", ErrMalformedName, err)
	}
	sum := sha256.Sum256(c.Raw)
	ci := &CertInfo{
		SubjectDN:    subject,
		IssuerDN:     issuer,
		SerialNumber: hex.EncodeToString(c.SerialNumber.Bytes()),
		SHA256:       hex.EncodeToString(sum[:]),
		DER:          base64.StdEncoding.EncodeToString(c.Raw),
		NotBefore:    c.NotBefore.UTC(),
		NotAfter:     c.NotAfter.UTC(),
		KeyUsage:     []string{},
		ExtKeyUsage:  []string{},
		PolicyOIDs:   []string{},
	}
	if c.SerialNumber.Sign() < 0 {
		ci.SerialNumber = "-" + ci.SerialNumber
	}
	if l := IssuerLevel(c.Issuer.CommonName); l != "" {
		ci.IssuerLevel = &l
	}
	for _, k := range keyUsageNames {
		if c.KeyUsage&k.bit != 0 {
			ci.KeyUsage = append(ci.KeyUsage, k.name)
		}
	}
	for _, e := range c.ExtKeyUsage {
		if n, ok := extKeyUsageNames[e]; ok {
			ci.ExtKeyUsage = append(ci.ExtKeyUsage, n)
		} else {
			ci.ExtKeyUsage = append(ci.ExtKeyUsage, fmt.Sprintf("eku-%d", e))
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		ci.ExtKeyUsage = append(ci.ExtKeyUsage, o.String())
	}
	for _, p := range c.Policies {
		ci.PolicyOIDs = append(ci.PolicyOIDs, p.String())
	}
	if len(ci.PolicyOIDs) == 0 {
		for _, p := range c.PolicyIdentifiers {
			ci.PolicyOIDs = append(ci.PolicyOIDs, p.String())
		}
	}
	return ci, nil
}
