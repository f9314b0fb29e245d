package i18n

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var verb = regexp.MustCompile(`%[-+# 0]*[0-9]*(\.[0-9]+)?[a-zA-Z%]`)

// TestCatalogueComplete: every key has a French and an English text, both
// take the same fmt arguments, and no text is left untranslated by mistake.
func TestCatalogueComplete(t *testing.T) {
	if len(Keys()) < 50 {
		t.Fatalf("only %d keys: catalogue not loaded?", len(Keys()))
	}
	for _, k := range Keys() {
		fr, en, ok := Text(k)
		if !ok {
			t.Fatalf("%s: Keys() returned a key Text() does not know", k)
		}
		if strings.TrimSpace(fr) == "" || strings.TrimSpace(en) == "" {
			t.Errorf("%s: missing text (fr=%q, en=%q)", k, fr, en)
			continue
		}
		vf, ve := verb.FindAllString(fr, -1), verb.FindAllString(en, -1)
		if !slices.Equal(vf, ve) {
			t.Errorf("%s: fmt verbs differ: fr %v, en %v", k, vf, ve)
		}
		if strings.ContainsAny(fr+en, "\r\x00") {
			t.Errorf("%s: control character", k)
		}
	}
}

// TestKeysDeclaredAreInCatalogue parses the package and checks that every
// constant of type Key has texts (a key added without texts would print as
// its own name).
func TestKeysDeclaredAreInCatalogue(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Key" {
						continue
					}
					for i, name := range vs.Names {
						lit := vs.Values[i].(*ast.BasicLit)
						key, _ := strconv.Unquote(lit.Value)
						n++
						if _, _, ok := Text(Key(key)); !ok {
							t.Errorf("%s (%q) has no text in the catalogue", name.Name, key)
						}
					}
				}
			}
		}
	}
	if n != len(Keys()) {
		t.Errorf("%d Key constants, %d catalogue entries: an entry without a constant, or a duplicate key", n, len(Keys()))
	}
	if got := T(FR, Key("no.such.key")); got != "no.such.key" {
		t.Errorf("unknown key printed as %q", got)
	}
}

func TestT(t *testing.T) {
	if got := T(FR, PINWrong, 2); got != "Code porteur incorrect. Il reste 2 essais avant le blocage de la carte." {
		t.Errorf("FR: %q", got)
	}
	if got := T(EN, PINWrong, 2); got != "Wrong PIN. 2 tries left before the card is blocked." {
		t.Errorf("EN: %q", got)
	}
	if got := T(Lang("de"), TrayQuit); got != "Quitter" {
		t.Errorf("a Lang value other than fr/en must be the default (French): %q", got)
	}
	fr, en := Both(TrayQuit)
	if fr != "Quitter" || en != "Quit" {
		t.Errorf("Both = %q, %q", fr, en)
	}
	if For(EN).T(TrayQuit) != "Quit" || EN.Code() != "en" || Lang("").Code() != "fr" {
		t.Error("Printer/Code")
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Lang
	}{
		{"", FR}, {"C", FR}, {"POSIX", FR}, {"C.UTF-8", FR}, // no language chosen: the default
		{"fr", FR}, {"fr_FR.UTF-8", FR}, {"fr_CA", FR}, {"fr-BE", FR}, {"FR_fr@euro", FR},
		{"en_US.UTF-8", EN}, {"de_DE", EN}, {"es", EN}, {"frisian", EN},
	} {
		if got := Parse(tt.in); got != tt.want {
			t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want Lang
	}{
		{map[string]string{}, FR},
		{map[string]string{"LANG": "en_US.UTF-8"}, EN},
		{map[string]string{"LANG": "en_US.UTF-8", "LC_MESSAGES": "fr_FR.UTF-8"}, FR},
		{map[string]string{"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "en_GB", "LC_ALL": "fr_FR"}, FR},
		{map[string]string{"LC_ALL": "en_US.UTF-8", "LANG": "fr_FR"}, EN},
		{map[string]string{"LANG": "fr_FR.UTF-8", "LANGUAGE": "en_GB:fr"}, EN},
		{map[string]string{"LANG": "C", "LANGUAGE": "en_GB"}, FR}, // LANGUAGE ignored for the C locale
		{map[string]string{"LANGUAGE": "en"}, FR},                 // and when no locale is set
		{map[string]string{"LANG": "de_DE.UTF-8"}, EN},
	} {
		got := fromEnv(func(k string) string { return tt.env[k] })
		if got != tt.want {
			t.Errorf("fromEnv(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}
