// Package i18n is the one catalogue of every user-facing string of the
// desktop side of the agent: tray menu, consent and PIN-management messages,
// diagnostics. French is the default; English is used when the user's locale
// is set to any other language.
//
// Strings are looked up by [Key] with [T] (or a [Printer]); a key missing from
// the catalogue prints as the key itself, so a mistake shows instead of
// panicking, and TestCatalogueComplete fails.
package i18n

import (
	"fmt"
	"os"
	"strings"
)

// Lang is a user-interface language.
type Lang string

// Supported languages.
const (
	FR Lang = "fr" // default
	EN Lang = "en" // every non-French locale
)

// Code returns the language code ("fr" or "en"), the value other packages
// expect in their Lang fields (pinentry.Request.Lang, API "lang").
func (l Lang) Code() string { return string(l.normal()) }

func (l Lang) normal() Lang {
	if l == EN {
		return EN
	}
	return FR
}

// Parse turns a locale or language tag into a Lang: "fr", "fr_FR.UTF-8",
// "fr-CA" give French; "C", "POSIX" and "" give the default (French); any other
// language ("en_US", "de_DE", "es") gives English.
func Parse(tag string) Lang {
	t := strings.ToLower(strings.TrimSpace(tag))
	if i := strings.IndexAny(t, ".@"); i >= 0 {
		t = t[:i]
	}
	switch {
	case t == "", t == "c", t == "posix":
		return FR
	case t == "fr" || strings.HasPrefix(t, "fr_") || strings.HasPrefix(t, "fr-"):
		return FR
	default:
		return EN
	}
}

// Detect returns the language of the user's session. On Unix it follows the
// POSIX precedence for messages: LC_ALL, then LC_MESSAGES, then LANG (the
// first one set and not empty); LANGUAGE, a GNU list, is consulted first
// when it is set and the locale is not "C". On Windows it asks
// GetUserDefaultUILanguage (see i18n_windows.go).
func Detect() Lang {
	if l, ok := platformLang(); ok {
		return l
	}
	return fromEnv(os.Getenv)
}

func fromEnv(getenv func(string) string) Lang {
	locale := ""
	for _, v := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if s := getenv(v); s != "" {
			locale = s
			break
		}
	}
	// GNU gettext: LANGUAGE (a colon-separated list) wins over the locale,
	// except when the locale is "C"/"POSIX" or unset.
	if locale != "" && !isPOSIX(locale) {
		if first, _, _ := strings.Cut(getenv("LANGUAGE"), ":"); first != "" {
			return Parse(first)
		}
	}
	return Parse(locale)
}

func isPOSIX(locale string) bool {
	l := strings.ToLower(locale)
	return l == "c" || l == "posix" || strings.HasPrefix(l, "c.")
}

// T returns the string for key in lang, formatted with args (fmt verbs).
func T(lang Lang, key Key, args ...any) string {
	m, ok := catalogue[key]
	if !ok {
		return string(key)
	}
	s := m.FR
	if lang.normal() == EN {
		s = m.EN
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// Printer binds a language.
type Printer struct{ Lang Lang }

// For returns a Printer for lang.
func For(lang Lang) Printer { return Printer{Lang: lang.normal()} }

// T is [T] in the printer's language.
func (p Printer) T(key Key, args ...any) string { return T(p.Lang, key, args...) }

// Both returns the French and the English text, for reports that carry both
// languages (doctor).
func Both(key Key, args ...any) (fr, en string) {
	return T(FR, key, args...), T(EN, key, args...)
}

// Keys returns every key of the catalogue (for tests and tools).
func Keys() []Key {
	keys := make([]Key, 0, len(catalogue))
	for k := range catalogue {
		keys = append(keys, k)
	}
	return keys
}

// Text returns the raw (unformatted) French and English texts of key.
func Text(key Key) (fr, en string, ok bool) {
	m, ok := catalogue[key]
	return m.FR, m.EN, ok
}

// Key names one string of the catalogue.
type Key string

type msg struct{ FR, EN string }
