package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Request limits (docs/api.md).
const (
	MaxSignBody        = 16 << 20 // POST /v1/sign
	MaxSmallBody       = 4 << 10  // every other endpoint
	MaxDataToSign      = 64 << 10 // decoded dataToSign
	MinNonceLen        = 44
	MaxNonceLen        = 128
	MaxDescriptionLen  = 200 // runes
	MaxReaderNameLen   = 256 // bytes
	documentDigestSize = 32  // SHA-256
)

// AuthRequest is the body of POST /v1/authenticate.
type AuthRequest struct {
	ChallengeNonce string
	Reader         string
	Lang           string
}

// SignMode says which of the three /v1/sign forms a request uses.
type SignMode int

// Sign modes.
const (
	SignRaw         SignMode = iota + 1 // {"dataToSign"}
	SignCAdESDoc                        // {"document", "format":"cades"}
	SignCAdESDigest                     // {"documentDigest", "digestAlgorithm":"SHA-256", "format":"cades"}
)

func (m SignMode) String() string {
	switch m {
	case SignRaw:
		return "sign-raw"
	case SignCAdESDoc:
		return "sign-cades-document"
	case SignCAdESDigest:
		return "sign-cades-digest"
	}
	return "sign"
}

// SignRequest is the decoded and validated body of POST /v1/sign.
type SignRequest struct {
	Mode        SignMode
	Data        []byte // dataToSign, document, or documentDigest (decoded)
	Description string
	Reader      string
	Lang        string
}

// flatObject reads a JSON object whose values are all strings, strictly:
// the body must be valid UTF-8; keys must be in allowed (exact,
// case-sensitive: encoding/json's case-insensitive matching is not used);
// no key twice; no other value type (null, number, object, array); nothing
// after the object. Any key named like a PIN or PUK is refused first, with
// its own message: the API never accepts a secret code.
func flatObject(body []byte, allowed ...string) (map[string]string, *Problem) {
	if !utf8.Valid(body) {
		return nil, badRequest("", "The body is not valid UTF-8.", "Le corps n'est pas de l'UTF-8 valide.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, badRequest("", "The body must be a JSON object.", "Le corps doit être un objet JSON.")
	}
	out := make(map[string]string, len(allowed))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed()
		}
		key, ok := tok.(string)
		if !ok {
			return nil, malformed()
		}
		if isSecretField(key) {
			return nil, badRequest(fieldName(key),
				"The agent never accepts a PIN or unblocking code from a web request; the holder types it in the agent's own prompt.",
				"L'agent n'accepte jamais de code porteur ou de déblocage dans une requête web ; le porteur le saisit dans la fenêtre de l'agent.")
		}
		if _, dup := out[key]; dup {
			return nil, badRequest(fieldName(key), "A field appears twice.", "Un champ apparaît deux fois.")
		}
		known := false
		for _, a := range allowed {
			if key == a {
				known = true
				break
			}
		}
		if !known {
			return nil, badRequest(fieldName(key), "Unknown field.", "Champ inconnu.")
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, malformed()
		}
		v, ok := tok.(string)
		if !ok {
			return nil, badRequest(key, "The field must be a string.", "Le champ doit être une chaîne de caractères.")
		}
		out[key] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, malformed()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("", "Unexpected data after the JSON object.", "Données inattendues après l'objet JSON.")
	}
	return out, nil
}

func malformed() *Problem {
	return badRequest("", "The body is not well-formed JSON.", "Le corps n'est pas du JSON bien formé.")
}

// isSecretField reports whether a key names a PIN or PUK, whatever its case
// or decoration (pin, PIN, userPin, new_pin, puk, ...).
func isSecretField(k string) bool {
	l := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "", " ", "").Replace(k))
	return l == "pin" || l == "puk" || strings.HasSuffix(l, "pin") || strings.HasSuffix(l, "puk") ||
		l == "pincode" || l == "password" || l == "codeporteur" || l == "passcode"
}

// fieldName bounds a caller-supplied key echoed in a problem.
func fieldName(k string) string {
	if len(k) > 64 {
		k = k[:64]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, k), "")
}

// decodeB64 decodes standard base64 with padding (RFC 4648 §4), refusing
// the line breaks that encoding/base64 would otherwise skip.
func decodeB64(field, s string) ([]byte, *Problem) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, badRequest(field, "The value must be standard base64 (RFC 4648 §4, with padding).", "La valeur doit être en base64 standard (RFC 4648 §4, avec bourrage).")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, badRequest(field, "The value must be standard base64 (RFC 4648 §4, with padding).", "La valeur doit être en base64 standard (RFC 4648 §4, avec bourrage).")
	}
	return b, nil
}

func checkLang(s string) *Problem {
	switch s {
	case "", "fr", "en":
		return nil
	}
	return badRequest("lang", `"lang" must be "fr" or "en".`, `"lang" doit valoir "fr" ou "en".`)
}

func checkReader(s string) *Problem {
	if len(s) > MaxReaderNameLen || hasControl(s) {
		return badRequest("reader", "Invalid reader name.", "Nom de lecteur invalide.")
	}
	return nil
}

// hasControl reports control characters (C0, C1, DEL), format characters
// (bidi overrides, zero-width) and line or paragraph separators.
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return true
		}
	}
	return false
}

// DecodeAuthRequest decodes and validates a POST /v1/authenticate body.
func DecodeAuthRequest(body []byte) (*AuthRequest, *Problem) {
	m, p := flatObject(body, "challengeNonce", "reader", "lang")
	if p != nil {
		return nil, p
	}
	nonce, ok := m["challengeNonce"]
	if !ok {
		return nil, badRequest("challengeNonce", `"challengeNonce" is required.`, `"challengeNonce" est obligatoire.`)
	}
	if len(nonce) < MinNonceLen || len(nonce) > MaxNonceLen {
		return nil, badRequest("challengeNonce",
			"The challenge nonce must be "+strconv.Itoa(MinNonceLen)+" to "+strconv.Itoa(MaxNonceLen)+" base64 characters.",
			"Le nonce doit compter de "+strconv.Itoa(MinNonceLen)+" à "+strconv.Itoa(MaxNonceLen)+" caractères base64.")
	}
	if _, p := decodeB64("challengeNonce", nonce); p != nil {
		return nil, p
	}
	if p := checkReader(m["reader"]); p != nil {
		return nil, p
	}
	if p := checkLang(m["lang"]); p != nil {
		return nil, p
	}
	return &AuthRequest{ChallengeNonce: nonce, Reader: m["reader"], Lang: m["lang"]}, nil
}

// DecodeSignRequest decodes and validates a POST /v1/sign body.
func DecodeSignRequest(body []byte) (*SignRequest, *Problem) {
	m, p := flatObject(body, "dataToSign", "document", "documentDigest", "digestAlgorithm", "format", "description", "reader", "lang")
	if p != nil {
		return nil, p
	}
	req := &SignRequest{Reader: m["reader"], Lang: m["lang"], Description: m["description"]}
	_, hasData := m["dataToSign"]
	_, hasDoc := m["document"]
	_, hasDigest := m["documentDigest"]
	n := 0
	for _, b := range []bool{hasData, hasDoc, hasDigest} {
		if b {
			n++
		}
	}
	if n != 1 {
		return nil, badRequest("", `Give exactly one of "dataToSign", "document" or "documentDigest".`,
			`Donnez exactement un champ parmi "dataToSign", "document" et "documentDigest".`)
	}
	format, hasFormat := m["format"]
	digestAlg, hasAlg := m["digestAlgorithm"]
	var field string
	switch {
	case hasData:
		req.Mode, field = SignRaw, "dataToSign"
		if hasFormat && format != "raw" {
			return nil, badRequest("format", `With "dataToSign", "format" must be absent or "raw".`, `Avec "dataToSign", "format" doit être absent ou valoir "raw".`)
		}
	case hasDoc:
		req.Mode, field = SignCAdESDoc, "document"
		if format != "cades" {
			return nil, badRequest("format", `With "document", "format" must be "cades".`, `Avec "document", "format" doit valoir "cades".`)
		}
	default:
		req.Mode, field = SignCAdESDigest, "documentDigest"
		if format != "cades" {
			return nil, badRequest("format", `With "documentDigest", "format" must be "cades".`, `Avec "documentDigest", "format" doit valoir "cades".`)
		}
		if digestAlg != "SHA-256" {
			return nil, badRequest("digestAlgorithm", `"digestAlgorithm" must be "SHA-256" (MD5, SHA-1 and others are refused).`,
				`"digestAlgorithm" doit valoir "SHA-256" (MD5, SHA-1 et les autres sont refusés).`)
		}
	}
	if hasAlg && req.Mode != SignCAdESDigest {
		return nil, badRequest("digestAlgorithm", `"digestAlgorithm" only goes with "documentDigest".`, `"digestAlgorithm" ne s'emploie qu'avec "documentDigest".`)
	}
	data, p := decodeB64(field, m[field])
	if p != nil {
		return nil, p
	}
	switch {
	case len(data) == 0:
		return nil, badRequest(field, "The value is empty.", "La valeur est vide.")
	case req.Mode == SignRaw && len(data) > MaxDataToSign:
		return nil, badRequest(field, `"dataToSign" is limited to 64 KiB.`, `"dataToSign" est limité à 64 Kio.`)
	case req.Mode == SignCAdESDigest && len(data) != documentDigestSize:
		return nil, badRequest(field, "A SHA-256 digest is 32 bytes.", "Une empreinte SHA-256 fait 32 octets.")
	}
	req.Data = data
	if utf8.RuneCountInString(req.Description) > MaxDescriptionLen || hasControl(req.Description) {
		return nil, badRequest("description", `"description" is plain text of at most 200 characters, on one line.`,
			`"description" est du texte brut d'au plus 200 caractères, sur une ligne.`)
	}
	if p := checkReader(req.Reader); p != nil {
		return nil, p
	}
	if p := checkLang(req.Lang); p != nil {
		return nil, p
	}
	return req, nil
}
