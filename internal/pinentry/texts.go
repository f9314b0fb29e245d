package pinentry

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// Texts are the strings of one pinentry dialog.
type Texts struct {
	Title       string // SETTITLE
	Description string // SETDESC (may contain newlines)
	Prompt      string // SETPROMPT, PIN dialogs only
	OK          string // SETOK
	NotOK       string // SETNOTOK, consent dialogs only
	Cancel      string // SETCANCEL
	Error       string // SETERROR, empty for none
}

// Length limits of the dialog fields, in runes.
const (
	// MaxDescriptionRunes limits the text supplied by the web request.
	MaxDescriptionRunes = 200
	maxFieldRunes       = 100 // holder, reader, operation, error
	maxOriginRunes      = 300
	maxCombiningRun     = 2 // consecutive combining marks kept (no "zalgo" text spilling over other lines)
)

type messages struct {
	titlePIN, titlePUK, titleNewPIN, titleConfirm string

	introPIN, introPUK, introNewPIN, introConfirm string

	// A request without an origin comes from the agent itself (the tray's
	// PIN change and unblock): it names no site.
	introLocalPIN, introLocalPUK, introLocalNewPIN, localRequest string

	rawAddress, noOrigin                 string
	operation, holder, reader, triesLeft string
	siteMessage                          string // %s is the quoted, sanitised text: use quoteOpen/quoteClose
	quoteOpen, quoteClose                string

	lastTry, lastTryPUK, lastTryShort string

	promptPIN, promptPUK, promptNewPIN, promptConfirmNewPIN string

	ok, cancel                     string
	question                       string
	allowOnce, allowAlways, refuse string

	tooFast, formatPIN, formatPUK string
}

var fr = messages{
	titlePIN:     "cpsagent – Code porteur de la carte CPS",
	titlePUK:     "cpsagent – Code de déblocage de la carte CPS",
	titleNewPIN:  "cpsagent – Nouveau code porteur",
	titleConfirm: "cpsagent – Autoriser un site à utiliser la carte CPS",

	introPIN:     "Le site suivant demande votre code porteur :",
	introPUK:     "Le site suivant demande le code de déblocage de votre carte :",
	introNewPIN:  "Le site suivant demande de changer votre code porteur :",
	introConfirm: "Le site suivant demande à utiliser votre carte CPS :",

	introLocalPIN:    "L'agent CPS de cet ordinateur demande votre code porteur :",
	introLocalPUK:    "L'agent CPS de cet ordinateur demande le code de déblocage de votre carte :",
	introLocalNewPIN: "L'agent CPS de cet ordinateur demande votre nouveau code porteur :",
	localRequest:     "(demande locale, faite depuis le menu de l'agent ; aucun site web n'est concerné)",

	rawAddress:  "(adresse technique : ",
	noOrigin:    "(site inconnu)",
	operation:   "Opération : ",
	holder:      "Porteur : ",
	reader:      "Lecteur : ",
	triesLeft:   "Essais restants : ",
	siteMessage: "Message du site (non vérifié) : ",
	quoteOpen:   "« ",
	quoteClose:  " »",

	lastTry:      "ATTENTION : dernier essai. Un code faux bloquera la carte.",
	lastTryPUK:   "ATTENTION : dernier essai. Un code faux bloquera définitivement la carte.",
	lastTryShort: "Dernier essai avant blocage de la carte.",

	promptPIN:           "Code porteur (4 chiffres) :",
	promptPUK:           "Code de déblocage (8 chiffres) :",
	promptNewPIN:        "Nouveau code porteur (4 chiffres) :",
	promptConfirmNewPIN: "Confirmez le nouveau code :",

	ok:          "_Valider",
	cancel:      "_Annuler",
	question:    "Autorisez-vous ce site à utiliser votre carte ?",
	allowOnce:   "Autoriser _une fois",
	allowAlways: "_Toujours autoriser ce site",
	refuse:      "_Refuser",

	tooFast:   "Réponse trop rapide : relisez la demande avant de répondre.",
	formatPIN: "Le code doit comporter exactement 4 chiffres.",
	formatPUK: "Le code doit comporter exactement 8 chiffres.",
}

var en = messages{
	titlePIN:     "cpsagent – CPS card PIN",
	titlePUK:     "cpsagent – CPS card unblocking code",
	titleNewPIN:  "cpsagent – New PIN",
	titleConfirm: "cpsagent – Allow a site to use the CPS card",

	introPIN:     "The following site asks for your PIN:",
	introPUK:     "The following site asks for your card's unblocking code:",
	introNewPIN:  "The following site asks to change your PIN:",
	introConfirm: "The following site asks to use your CPS card:",

	introLocalPIN:    "The CPS agent on this computer asks for your PIN:",
	introLocalPUK:    "The CPS agent on this computer asks for your card's unblocking code:",
	introLocalNewPIN: "The CPS agent on this computer asks for your new PIN:",
	localRequest:     "(local request, made from the agent's menu; no web site is involved)",

	rawAddress:  "(raw address: ",
	noOrigin:    "(unknown site)",
	operation:   "Operation: ",
	holder:      "Card holder: ",
	reader:      "Reader: ",
	triesLeft:   "Tries left: ",
	siteMessage: "Message from the site (unverified): ",
	quoteOpen:   "“",
	quoteClose:  "”",

	lastTry:      "WARNING: last try. A wrong code will block the card.",
	lastTryPUK:   "WARNING: last try. A wrong code will block the card for good.",
	lastTryShort: "Last try before the card is blocked.",

	promptPIN:           "PIN (4 digits):",
	promptPUK:           "Unblocking code (8 digits):",
	promptNewPIN:        "New PIN (4 digits):",
	promptConfirmNewPIN: "Confirm the new PIN:",

	ok:          "_OK",
	cancel:      "_Cancel",
	question:    "Do you allow this site to use your card?",
	allowOnce:   "Allow _once",
	allowAlways: "_Always allow this site",
	refuse:      "_Refuse",

	tooFast:   "Answer too fast: read the request before answering.",
	formatPIN: "The code must be exactly 4 digits.",
	formatPUK: "The code must be exactly 8 digits.",
}

// language picks the messages: "" and "fr…" are French, anything else English.
func language(lang string) *messages {
	l := strings.ToLower(strings.TrimSpace(lang))
	if l == "" || l == "fr" || strings.HasPrefix(l, "fr-") || strings.HasPrefix(l, "fr_") {
		return &fr
	}
	return &en
}

// PINTexts builds the texts of the PIN dialog for r. It is a pure function.
// A request without Origin is the agent's own (the tray's PIN change or
// unblock) and says so; every web request has a validated, non-empty
// origin, so a page can never get that wording.
func PINTexts(r Request) Texts {
	m := language(r.Lang)
	t := Texts{OK: m.ok, Cancel: m.cancel}
	local := r.Origin == ""
	intro := pick(local, m.introLocalPIN, m.introPIN)
	warning := m.lastTry
	switch r.Kind {
	case PUK:
		t.Title, t.Prompt, intro, warning = m.titlePUK, m.promptPUK, pick(local, m.introLocalPUK, m.introPUK), m.lastTryPUK
	case NewPIN:
		t.Title, t.Prompt, intro = m.titleNewPIN, m.promptNewPIN, pick(local, m.introLocalNewPIN, m.introNewPIN)
	case ConfirmNewPIN:
		t.Title, t.Prompt, intro = m.titleNewPIN, m.promptConfirmNewPIN, pick(local, m.introLocalNewPIN, m.introNewPIN)
	default:
		t.Title, t.Prompt = m.titlePIN, m.promptPIN
	}

	var lines []string
	if r.LastTry {
		lines = append(lines, warning, "")
	}
	lines = append(lines, intro)
	if local {
		lines = append(lines, "    "+m.localRequest)
	} else {
		lines = append(lines, originLines(m, r.Origin)...)
	}
	lines = appendField(lines, m.operation, r.Operation)
	lines = appendField(lines, m.holder, r.Holder)
	lines = appendField(lines, m.reader, r.Reader)
	if r.TriesLeft > 0 {
		lines = append(lines, m.triesLeft+strconv.Itoa(r.TriesLeft))
	}
	lines = appendSiteMessage(lines, m, r.Description)
	t.Description = strings.Join(lines, "\n")

	t.Error = sanitize(r.Error, maxFieldRunes)
	if t.Error == "" && r.LastTry {
		t.Error = m.lastTryShort
	}
	return t
}

// ConfirmTexts builds the texts of the three-button consent dialog for c. It
// is a pure function. OK is "allow once", NotOK "always allow this site",
// Cancel "refuse".
func ConfirmTexts(c ConfirmRequest) Texts {
	m := language(c.Lang)
	lines := []string{m.introConfirm}
	lines = append(lines, originLines(m, c.Origin)...)
	lines = appendField(lines, m.operation, c.Operation)
	lines = appendField(lines, m.holder, c.Holder)
	lines = appendSiteMessage(lines, m, c.Description)
	lines = append(lines, "", m.question)
	return Texts{
		Title:       m.titleConfirm,
		Description: strings.Join(lines, "\n"),
		OK:          m.allowOnce,
		NotOK:       m.allowAlways,
		Cancel:      m.refuse,
	}
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

func appendField(lines []string, label, value string) []string {
	if v := sanitize(value, maxFieldRunes); v != "" {
		lines = append(lines, label+v)
	}
	return lines
}

func appendSiteMessage(lines []string, m *messages, desc string) []string {
	if d := SanitizeDescription(desc); d != "" {
		lines = append(lines, "", m.siteMessage+m.quoteOpen+d+m.quoteClose)
	}
	return lines
}

// originLines shows the origin indented on its own line; an internationalised
// host is shown decoded and, on the next line, in its raw ASCII form.
func originLines(m *messages, origin string) []string {
	display, raw := OriginForms(origin)
	if display == "" {
		return []string{"    " + m.noOrigin}
	}
	lines := []string{"    " + display}
	if raw != "" {
		lines = append(lines, "    "+m.rawAddress+raw+")")
	}
	return lines
}

// OriginForms returns how an origin is displayed. For an internationalised
// host, display has the Unicode host and raw the ASCII (punycode) host, e.g.
// "https://café.example" and "https://xn--caf-dma.example"; otherwise raw is
// empty and display is the origin itself. Port and scheme are kept. An origin
// containing control, format or space characters (never a valid one) is
// shown Go-quoted with \u escapes.
func OriginForms(origin string) (display, raw string) {
	s := sanitize(origin, maxOriginRunes)
	if s != origin {
		// Not a well-formed origin (control, format or space characters):
		// show it escaped rather than silently cleaned, which could show
		// another origin than the one that asked.
		return sanitize(strconv.QuoteToASCII(origin), maxOriginRunes), ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return s, ""
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return s, ""
	}
	ascii, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return s, ""
	}
	uni, err := idna.Display.ToUnicode(ascii)
	if err != nil || uni == ascii {
		return s, ""
	}
	form := func(h string) string {
		if p := u.Port(); p != "" {
			h = net.JoinHostPort(h, p)
		}
		return u.Scheme + "://" + h
	}
	return sanitize(form(uni), maxOriginRunes), form(ascii)
}

// SanitizeDescription makes text supplied by a web request safe to show in a
// dialog: invalid UTF-8 becomes U+FFFD; control characters and whitespace
// runs become one space (the text stays on one line); format characters
// (bidi overrides, zero-width characters, tags), private-use and surrogate
// code points are dropped; at most 2 combining marks follow a character;
// quotation marks become an apostrophe and '<' '>' become '‹' '›' (so the text
// cannot close the agent's quotes or be read as markup); the result is
// trimmed and cut to MaxDescriptionRunes runes, the last being '…' when cut.
func SanitizeDescription(s string) string {
	return sanitizeWith(s, MaxDescriptionRunes, true)
}

// sanitize is SanitizeDescription without the quote and markup mapping, for
// agent-side fields (holder, reader, operation, origin, error).
func sanitize(s string, max int) string {
	return sanitizeWith(s, max, false)
}

func sanitizeWith(s string, max int, quotes bool) string {
	out := make([]rune, 0, min(len(s), max+1))
	pendingSpace := false
	marks := 0            // combining marks kept after the last base character
	for _, r := range s { // invalid UTF-8 yields U+FFFD
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			pendingSpace = len(out) > 0
			continue
		}
		if unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp) {
			continue
		}
		if unicode.In(r, unicode.Mn, unicode.Me) {
			// a mark at the start or after a space has no base character
			if len(out) == 0 || pendingSpace || marks >= maxCombiningRun {
				continue
			}
			marks++
		} else {
			marks = 0
		}
		if quotes {
			r = mapQuote(r)
		}
		if pendingSpace {
			out = append(out, ' ')
			pendingSpace = false
		}
		out = append(out, r)
		if len(out) > max {
			break
		}
	}
	if len(out) > max {
		out = out[:max-1]
		for len(out) > 0 && (out[len(out)-1] == ' ' || unicode.In(out[len(out)-1], unicode.Mn, unicode.Me)) {
			out = out[:len(out)-1]
		}
		out = append(out, '…')
	}
	return string(out)
}

func mapQuote(r rune) rune {
	switch r {
	case '"', '«', '»', '“', '”', '„', '‟', '〝', '〞', '〟', '＂', '❝', '❞', '⹂', '‚', '‘', '’', '‛', '`', '´':
		return '\''
	case '<':
		return '‹'
	case '>':
		return '›'
	}
	return r
}
