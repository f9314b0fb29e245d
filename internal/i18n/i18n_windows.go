//go:build windows

package i18n

import "syscall"

var procGetUserDefaultUILanguage = syscall.NewLazyDLL("kernel32.dll").NewProc("GetUserDefaultUILanguage")

// langFrench is LANG_FRENCH, the primary language of every French LANGID
// (fr-FR 0x040C, fr-BE 0x080C, fr-CA 0x0C0C, fr-CH 0x100C, ...).
const langFrench = 0x0c

// platformLang asks Windows for the user's display language. The locale
// variables are ignored on Windows unless the call is unavailable.
func platformLang() (Lang, bool) {
	if err := procGetUserDefaultUILanguage.Find(); err != nil {
		return "", false
	}
	r, _, _ := procGetUserDefaultUILanguage.Call()
	return fromLANGID(uint16(r)), true
}

// fromLANGID keeps the primary language (low 10 bits) of a LANGID.
func fromLANGID(id uint16) Lang {
	switch id & 0x3ff {
	case langFrench:
		return FR
	case 0: // LANG_NEUTRAL: unknown, keep the default
		return FR
	default:
		return EN
	}
}
