package cpsid

import "strings"

// Nomenclature systems, as URNs of their OIDs (identity.md §3).
const (
	// SystemTREG15 is TRE_G15-ProfessionSante.
	SystemTREG15 = "urn:oid:1.2.250.1.71.1.2.7"
)

// nationalIDTypes is TRE_G08-TypeIdentifiantPersonne (OID 1.2.250.1.71.1.2.15),
// labels as published by ANS (version 20240329). Codes 2 and 9 are deprecated
// since 2020 but may still be met on old cards.
var nationalIDTypes = map[byte]string{
	'0': "N° ADELI",
	'1': "Id Cabinet ADELI / N° de registre",
	'2': "N° DRASS",
	'3': "FINESS / N° de registre",
	'4': "SIREN / N° de registre",
	'5': "SIRET / N° de registre",
	'6': "Id Cabinet RPPS / N° de registre",
	'8': "N° RPPS",
	'9': "N° Etudiant",
}

// structureIDTypes is TRE_G07-TypeIdentifiantStructure, the prefix of a
// structure identifier found in the subject OU (identity.md §1.4).
var structureIDTypes = map[byte]string{
	'0': "Id Cabinet ADELI",
	'1': "FINESS",
	'2': "SIREN",
	'3': "SIRET",
	'4': "Id Cabinet RPPS",
}

// isPersonalIDType reports whether the TRE_G08 code identifies a person
// directly (CPS/CPF holders) rather than "structure / internal id" (CPE/CPA).
func isPersonalIDType(c byte) bool { return c == '0' || c == '2' || c == '8' || c == '9' }

// isStructureIDType reports whether the TRE_G08 code is "structure id / internal id".
func isStructureIDType(c byte) bool {
	return c == '1' || c == '3' || c == '4' || c == '5' || c == '6'
}

// professions is TRE_G15-ProfessionSante (version 20241213). A code may have
// several labels: the first is the official one, the others are designations
// published with it. Deprecated codes are kept because cards issued before
// the deprecation still carry the label.
var professions = []struct {
	code   string
	labels []string
}{
	{"10", []string{"Médecin"}},
	{"21", []string{"Pharmacien"}},
	{"26", []string{"Audioprothésiste"}},
	{"28", []string{"Opticien-Lunetier"}},
	{"31", []string{"Assistant dentaire"}},
	{"32", []string{"Physicien médical"}},
	{"35", []string{"Aide-soignant"}},              // deprecated 2024-12
	{"36", []string{"Ambulancier"}},                // deprecated 2024-12
	{"37", []string{"Auxiliaire de puériculture"}}, // deprecated 2024-12
	{"38", []string{"Préparateur en pharmacie hospitalière", "Prép en pharmacie (hôpital)"}},                            // deprecated 2024-12
	{"39", []string{"Préparateur en pharmacie", "Prép en pharmacie (officine)", "Préparateur en pharmacie (officine)"}}, // deprecated 2024-12
	{"40", []string{"Chirurgien-Dentiste"}},
	{"50", []string{"Sage-Femme"}},
	{"60", []string{"Infirmier"}},
	{"69", []string{"Infirmier psychiatrique"}},
	{"70", []string{"Masseur-Kinésithérapeute"}},
	{"80", []string{"Pédicure-Podologue"}},
	{"81", []string{"Orthoprothésiste"}},
	{"82", []string{"Podo-Orthésiste"}},
	{"83", []string{"Orthopédiste-Orthésiste"}},
	{"84", []string{"Oculariste"}},
	{"85", []string{"Epithésiste"}},
	{"86", []string{"Technicien de labo médical", "Technicien de laboratoire médical"}},
	{"91", []string{"Orthophoniste"}},
	{"92", []string{"Orthoptiste"}},
	{"93", []string{"Psychologue"}}, // created deprecated (2021)
	{"94", []string{"Ergothérapeute"}},
	{"95", []string{"Diététicien"}},
	{"96", []string{"Psychomotricien"}},
	{"98", []string{"Manipulateur ERM"}},
}

var professionByKey = func() map[string]string {
	m := make(map[string]string)
	for _, p := range professions {
		for _, l := range p.labels {
			m[foldLabel(l)] = p.code
		}
	}
	return m
}()

// ProfessionCode returns the TRE_G15 code of a profession label as written in
// the certificate title. The match ignores case, accents and the difference
// between spaces and hyphens ("sage femme" matches "Sage-Femme").
func ProfessionCode(label string) (string, bool) {
	code, ok := professionByKey[foldLabel(label)]
	return code, ok
}

// cardTypes maps TRE_G02-TypeProduit numeric codes to TRE_R87-TypeCarte
// codes (identity.md §2, [C]).
var cardTypes = map[int]string{0: "CPS", 1: "CPF", 2: "CPE", 3: "CPA"}

// cardTypeCodes is the reverse of cardTypes, as two-digit TRE_G02 strings.
var cardTypeCodes = map[string]string{"CPS": "00", "CPF": "01", "CPE": "02", "CPA": "03"}

var accentFold = strings.NewReplacer(
	"à", "a", "â", "a", "ä", "a", "á", "a", "ã", "a",
	"ç", "c",
	"é", "e", "è", "e", "ê", "e", "ë", "e",
	"î", "i", "ï", "i", "í", "i", "ì", "i",
	"ô", "o", "ö", "o", "ó", "o", "ò", "o", "õ", "o",
	"ù", "u", "û", "u", "ü", "u", "ú", "u",
	"ÿ", "y", "ñ", "n", "œ", "oe", "æ", "ae",
	"’", "'",
)

// foldLabel lowers, strips French accents and collapses runs of spaces,
// hyphens and underscores into one space.
func foldLabel(s string) string {
	s = accentFold.Replace(strings.ToLower(s))
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '\t' || r == '\u00a0'
	}), " ")
}
