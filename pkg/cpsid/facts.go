package cpsid

import "encoding/asn1"

// This file gathers every fact about IGC-Santé card certificates that is
// marked uncertain ([?]) or only observed in third-party material ([O]) in
// /work/shared/docs/identity.md. Nothing else in the package hard-codes such
// a fact: when a real test card disagrees, only this block should change.
// Each entry names the identity.md section it comes from.

// OIDCardType is the private extension carrying the card family
// (TRE_G02-TypeProduit code 0..3). identity.md §1.5.
//
// [C] for GIP-CPS / CPS3-era certificates; [?] whether current IGC-Santé
// FORT/STANDARD card certificates still carry it. [?] exact ASN.1 tag: the
// GIE SESAM-Vitale sample reads "3 raw bytes, last byte is the code", so the
// decoder accepts INTEGER, ENUMERATED, OCTET STRING and any 3-byte TLV.
var OIDCardType = asn1.ObjectIdentifier{1, 2, 250, 1, 71, 1, 2, 2}

const (
	// testIssuerOU marks the IGC-Santé test PKI in the CA DN
	// (OU=IGC-SANTE TEST). identity.md §1.1 [C].
	testIssuerOU = "IGC-SANTE TEST"
	// testIssuerCNPrefix prefixes test CA names ("TEST AC IGC-SANTE …").
	// identity.md §1.1 [C] for ELEMENTAIRE CAs; [?] for the FORT PERSONNES
	// test CA, whose name was never observed.
	testIssuerCNPrefix = "TEST "
	// legacyTestO marks legacy GIP-CPS test cards (O=TEST in the subject or
	// the issuer). identity.md §1.3 [O].
	legacyTestO = "TEST"

	// cardIssuerID prefixes the card serial number read from EF.SN.ICC
	// (ANS issuer number). identity.md §1.2 [C/?]: whether the remaining 10
	// digits equal the Annuaire Santé card number is unverified.
	cardIssuerID = "8025000001"
)

// issuerLevels maps a word of the issuing CA common name to the IGC-Santé
// gamme. identity.md §1.1: the CA names are [C]; which gamme issues which
// card family is [?] (FORT for CPS/CPF, STANDARD maybe for CPE/CPA), so the
// level is only reported, never used to decide anything.
var issuerLevels = []struct{ word, level string }{
	{"ELEMENTAIRE", "ELEMENTAIRE"},
	{"STANDARD", "STANDARD"},
	{"FORT", "FORT"}, // also matches the common misspelling "FORTE"
}

// Card-type heuristics, used only when no certificate carries OIDCardType.
// identity.md §2 "How to tell them apart" (3) is itself [?]:
//   - a personal identifier (RPPS, ADELI, legacy DRASS/student number) is
//     assumed to be a CPS; a CPF (student card) carries the same kind of
//     identifier and cannot be told apart from the DN alone;
//   - a structure-attached identifier (types 1/3/4/5/6) is a CPE or a CPA;
//     the DN does not say which, so the type is left null unless the
//     internal id starts with one of the prefixes below, seen in legacy test
//     DNs (CN=5…/CPAT0001 [O], CN=3…/CPET00002 [O]).
var heuristicInternalIDPrefixes = []struct{ prefix, cardType string }{
	{"CPA", "CPA"},
	{"CPE", "CPE"},
}
