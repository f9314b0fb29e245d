// Package cpsid extracts the holder identity from the X.509 certificates of a
// French health-professional smart card (CPS, CPF, CPE, CPA; IGC-Santé PKI).
//
// The functions are pure: no I/O, no clock, no network. The package is used
// by the agent (to describe the inserted card) and by portal servers (to
// describe the signer of a verified token or signature, see pkg/cpsverify).
// It never validates trust: an Identity built from an unverified certificate
// is only a claim.
//
// Identity follows the JSON layout of docs identity.md §8. Where the source
// documentation was uncertain, the facts used are gathered in facts.go, and
// anything unusual found in a certificate is reported in Identity.Warnings
// instead of failing.
//
// Distinguished names are printed in RFC 4514 order (last RDN first, so the
// holder DN reads "CN=…+SN=…+GN=…,title=…,C=FR", as OpenSSL prints it), with short names
// for SN, GN and title.
//
// Sub-package cpstest generates a throw-away IGC-Santé-like test PKI and card
// certificates for tests and for the virtual card.
package cpsid
