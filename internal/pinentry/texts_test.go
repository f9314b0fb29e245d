package pinentry

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPINTexts(t *testing.T) {
	base := Request{
		Kind:      PIN,
		Origin:    "https://portail.example.fr",
		Operation: "signature d'un document",
		Holder:    "Dr Jeanne MARTIN",
		Reader:    "Virtual PCD 00 00",
		TriesLeft: 3,
	}
	tests := []struct {
		name string
		edit func(*Request)
		// substrings expected (want) and forbidden (not) in the description
		want, not []string
		title     string
		prompt    string
		ok        string
		errText   string
	}{
		{
			name:   "french default",
			want:   []string{"Le site suivant demande votre code porteur :\n    https://portail.example.fr\nOpération : signature d'un document\nPorteur : Dr Jeanne MARTIN\nLecteur : Virtual PCD 00 00\nEssais restants : 3"},
			not:    []string{"ATTENTION", "adresse technique", "Message du site"},
			title:  "cpsagent – Code porteur de la carte CPS",
			prompt: "Code porteur (4 chiffres) :",
			ok:     "_Valider",
		},
		{
			name:   "french region tag",
			edit:   func(r *Request) { r.Lang = "fr-FR" },
			want:   []string{"Essais restants : 3"},
			prompt: "Code porteur (4 chiffres) :",
		},
		{
			name:   "english",
			edit:   func(r *Request) { r.Lang = "en" },
			want:   []string{"The following site asks for your PIN:\n    https://portail.example.fr\nOperation: signature d'un document\nCard holder: Dr Jeanne MARTIN\nReader: Virtual PCD 00 00\nTries left: 3"},
			title:  "cpsagent – CPS card PIN",
			prompt: "PIN (4 digits):",
			ok:     "_OK",
		},
		{
			name:   "other language falls back to english",
			edit:   func(r *Request) { r.Lang = "de-DE" },
			prompt: "PIN (4 digits):",
		},
		{
			name: "IDN origin decoded and raw",
			edit: func(r *Request) { r.Origin = "https://xn--caf-dma.example:8443" },
			want: []string{"    https://café.example:8443\n    (adresse technique : https://xn--caf-dma.example:8443)"},
		},
		{
			name: "unicode origin gets its punycode form",
			edit: func(r *Request) { r.Origin = "https://café.example"; r.Lang = "en" },
			want: []string{"    https://café.example\n    (raw address: https://xn--caf-dma.example)"},
		},
		{
			name: "homograph shows the raw form",
			edit: func(r *Request) { r.Origin = "https://xn--80ak6aa92e.com" },
			want: []string{"https://аррӏе.com", "https://xn--80ak6aa92e.com"},
		},
		{
			name: "IP origin",
			edit: func(r *Request) { r.Origin = "https://[::1]:9443" },
			want: []string{"    https://[::1]:9443\n"},
			not:  []string{"adresse technique"},
		},
		{
			name: "origin with a bidi override is shown escaped",
			edit: func(r *Request) { r.Origin = "https://evil.example\u202efr.portail" },
			want: []string{`"https://evil.example\u202efr.portail"`},
		},
		{
			name: "no origin: the agent's own request (tray)",
			edit: func(r *Request) { r.Origin = ""; r.Operation = "changement du code porteur" },
			want: []string{"L'agent CPS de cet ordinateur demande votre code porteur :\n    (demande locale, faite depuis le menu de l'agent ; aucun site web n'est concerné)\nOpération : changement du code porteur"},
			not:  []string{"site suivant", "site inconnu"},
		},
		{
			name: "no origin, english",
			edit: func(r *Request) { r.Origin = ""; r.Lang = "en" },
			want: []string{"The CPS agent on this computer asks for your PIN:\n    (local request, made from the agent's menu; no web site is involved)\n"},
			not:  []string{"following site", "unknown site"},
		},
		{
			name: "no origin, unblock: PUK then new PIN",
			edit: func(r *Request) { r.Origin = ""; r.Kind = PUK },
			want: []string{"L'agent CPS de cet ordinateur demande le code de déblocage de votre carte :\n    (demande locale"},
			not:  []string{"site suivant"},
		},
		{
			name: "no origin, new PIN",
			edit: func(r *Request) { r.Origin = ""; r.Kind = NewPIN; r.Lang = "en" },
			want: []string{"The CPS agent on this computer asks for your new PIN:\n    (local request"},
		},
		{
			name: "no origin, confirm new PIN",
			edit: func(r *Request) { r.Origin = ""; r.Kind = ConfirmNewPIN },
			want: []string{"L'agent CPS de cet ordinateur demande votre nouveau code porteur :"},
		},
		{
			name: "a blank origin is not a local request",
			edit: func(r *Request) { r.Origin = " " },
			want: []string{"Le site suivant demande votre code porteur :"},
			not:  []string{"demande locale"},
		},
		{
			name:    "last try",
			edit:    func(r *Request) { r.TriesLeft = 1; r.LastTry = true },
			want:    []string{"ATTENTION : dernier essai. Un code faux bloquera la carte.\n\nLe site", "Essais restants : 1"},
			errText: "Dernier essai avant blocage de la carte.",
		},
		{
			name:    "last try keeps the given error",
			edit:    func(r *Request) { r.LastTry = true; r.Lang = "en"; r.Error = "Wrong PIN\r\n(2nd)" },
			want:    []string{"WARNING: last try."},
			errText: "Wrong PIN (2nd)",
		},
		{
			name: "unknown tries",
			edit: func(r *Request) { r.TriesLeft = -1 },
			not:  []string{"Essais"},
		},
		{
			name:   "PUK",
			edit:   func(r *Request) { r.Kind = PUK; r.LastTry = true },
			want:   []string{"code de déblocage de votre carte", "bloquera définitivement"},
			title:  "cpsagent – Code de déblocage de la carte CPS",
			prompt: "Code de déblocage (8 chiffres) :",
		},
		{
			name:   "new PIN",
			edit:   func(r *Request) { r.Kind = NewPIN },
			prompt: "Nouveau code porteur (4 chiffres) :",
			title:  "cpsagent – Nouveau code porteur",
		},
		{
			name:   "confirm new PIN",
			edit:   func(r *Request) { r.Kind = ConfirmNewPIN; r.Lang = "en" },
			prompt: "Confirm the new PIN:",
		},
		{
			name: "description quoted on one line",
			edit: func(r *Request) {
				r.Description = "Ordonnance n°42\n\nPorteur : Dr Faux\u202e »ATTENTION« <b>x</b>"
			},
			want: []string{"\n\nMessage du site (non vérifié) : « Ordonnance n°42 Porteur : Dr Faux 'ATTENTION' ‹b›x‹/b› »"},
			not:  []string{"\nPorteur : Dr Faux", "\u202e", "<b>"},
		},
		{
			name: "description in english quotes",
			edit: func(r *Request) { r.Lang = "en"; r.Description = `say "hi"` },
			want: []string{"Message from the site (unverified): “say 'hi'”"},
		},
		{
			name: "long description is cut",
			edit: func(r *Request) { r.Description = strings.Repeat("é", 500) },
			want: []string{"« " + strings.Repeat("é", MaxDescriptionRunes-1) + "… »"},
		},
		{
			name: "agent fields are one line",
			edit: func(r *Request) { r.Holder = "A\nOpération : rien"; r.Reader = strings.Repeat("r", 300) },
			want: []string{"Porteur : A Opération : rien\n", "Lecteur : " + strings.Repeat("r", maxFieldRunes-1) + "…\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			if tt.edit != nil {
				tt.edit(&r)
			}
			got := PINTexts(r)
			for _, w := range tt.want {
				if !strings.Contains(got.Description, w) {
					t.Errorf("description lacks %q:\n%s", w, got.Description)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got.Description, n) {
					t.Errorf("description contains %q:\n%s", n, got.Description)
				}
			}
			check := func(field, got, want string) {
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			check("title", got.Title, tt.title)
			check("prompt", got.Prompt, tt.prompt)
			check("OK", got.OK, tt.ok)
			check("error", got.Error, tt.errText)
			if got.NotOK != "" {
				t.Errorf("a PIN dialog has a NotOK button %q", got.NotOK)
			}
			if !r.LastTry && r.Error == "" && got.Error != "" {
				t.Errorf("error = %q, want none", got.Error)
			}
			if PINTexts(r) != got {
				t.Error("PINTexts is not deterministic")
			}
		})
	}
}

func TestConfirmTexts(t *testing.T) {
	tests := []struct {
		lang              string
		ok, notOK, cancel string
		intro, question   string
		title             string
	}{
		{"", "Autoriser _une fois", "_Toujours autoriser ce site", "_Refuser", "Le site suivant demande à utiliser votre carte CPS :", "Autorisez-vous ce site à utiliser votre carte ?", "cpsagent – Autoriser un site à utiliser la carte CPS"},
		{"en-GB", "Allow _once", "_Always allow this site", "_Refuse", "The following site asks to use your CPS card:", "Do you allow this site to use your card?", "cpsagent – Allow a site to use the CPS card"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			got := ConfirmTexts(ConfirmRequest{Origin: "https://xn--caf-dma.example", Operation: "op", Holder: "H", Description: "d\x00e", Lang: tt.lang})
			if got.OK != tt.ok || got.NotOK != tt.notOK || got.Cancel != tt.cancel || got.Title != tt.title || got.Prompt != "" || got.Error != "" {
				t.Fatalf("texts = %#v", got)
			}
			if !strings.HasPrefix(got.Description, tt.intro+"\n    https://café.example\n") || !strings.HasSuffix(got.Description, "\n\n"+tt.question) {
				t.Fatalf("description:\n%s", got.Description)
			}
			if !strings.Contains(got.Description, "de") || strings.Contains(got.Description, "\x00") {
				t.Fatalf("description not sanitised:\n%s", got.Description)
			}
		})
	}
	// pinentry-tty selects a button by the letter after "_": they must differ
	for _, m := range []*messages{&fr, &en} {
		seen := map[rune]bool{}
		for _, label := range []string{m.allowOnce, m.allowAlways, m.refuse} {
			i := strings.IndexByte(label, '_')
			r, _ := utf8.DecodeRuneInString(label[i+1:])
			r = unicode.ToLower(r)
			if i < 0 || seen[r] {
				t.Errorf("label %q: missing or duplicate accelerator", label)
			}
			seen[r] = true
		}
	}
}

func TestSanitizeDescription(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"  \t\n ", ""},
		{"plain text", "plain text"},
		{"a\r\nb\tc\x00d\x7fe\u0085f", "a b c d e f"},
		{"line\u2028sep\u2029para", "line sep para"},
		{"bidi\u202eevil\u202c \u2066x\u2069", "bidievil x"},
		{"zero\u200bwidth\ufeff\u200d", "zerowidth"},
		{"tag\U000E0041\U000E0042", "tag"},
		{"private\ue000use", "privateuse"},
		{"bad\xffutf8", "bad\ufffdutf8"},
		{"«guillemets» “curly” \"straight\" „low“", "'guillemets' 'curly' 'straight' 'low'"},
		{"<script>&amp;</script>", "‹script›&amp;‹/script›"},
		{"e\u0301\u0301\u0301\u0301x", "e\u0301\u0301x"},
		{"\u0301start", "start"},
		{"a \u0301b", "a b"},
		{"l'apostrophe reste", "l'apostrophe reste"},
		{strings.Repeat("x", MaxDescriptionRunes), strings.Repeat("x", MaxDescriptionRunes)},
		{strings.Repeat("x", MaxDescriptionRunes+1), strings.Repeat("x", MaxDescriptionRunes-1) + "…"},
		{strings.Repeat("x", MaxDescriptionRunes-2) + " yz", strings.Repeat("x", MaxDescriptionRunes-2) + "…"},
	}
	for _, tt := range tests {
		if got := SanitizeDescription(tt.in); got != tt.want {
			t.Errorf("SanitizeDescription(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSanitizeDescription(f *testing.F) {
	for _, s := range []string{
		"", "Ordonnance n°42", "a\nb", "\u202eevil", "«x»", "<b>", "e\u0301\u0301\u0301", strings.Repeat("é", 300),
		"bad\xff\xfe", "\U000E0041", " \u0301", "x\u200d\u0301\u0301\u0301", strings.Repeat("a ", 150),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SanitizeDescription(in)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if n := utf8.RuneCountInString(out); n > MaxDescriptionRunes {
			t.Fatalf("%d runes", n)
		}
		if strings.TrimSpace(out) != out || strings.Contains(out, "  ") {
			t.Fatalf("untrimmed or double space: %q", out)
		}
		marks := 0
		for i, r := range out {
			switch {
			case r != ' ' && (unicode.IsControl(r) || unicode.IsSpace(r)):
				t.Fatalf("control or space %U at %d in %q", r, i, out)
			case unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp):
				t.Fatalf("format/private character %U in %q", r, out)
			case strings.ContainsRune("\"«»“”„<>", r):
				t.Fatalf("quote or markup %q in %q", r, out)
			}
			if unicode.In(r, unicode.Mn, unicode.Me) {
				marks++
				if i == 0 || marks > maxCombiningRun {
					t.Fatalf("combining mark run in %q", out)
				}
			} else {
				marks = 0
			}
		}
		if again := SanitizeDescription(out); again != out {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
		// what the dialog shows for it stays on its quoted line
		d := PINTexts(Request{Description: in}).Description
		if strings.Count(d, "\n") != strings.Count(PINTexts(Request{Description: "x"}).Description, "\n") && out != "" {
			t.Fatalf("description changed the line structure: %q", d)
		}
	})
}
