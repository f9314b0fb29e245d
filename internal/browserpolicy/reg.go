package browserpolicy

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Registry keys of the browsers' machine policies.
const (
	regChrome  = `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome`
	regEdge    = `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Edge`
	regFirefox = `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Mozilla\Firefox\LocalNetworkAccess`
)

// Reg returns a Windows registry file (for regedit /s or a GPO preference)
// that sets the policies of Chrome and Edge (both list policies, values
// "1", "2", … of type REG_SZ) and Firefox (LocalNetworkAccess\Enabled = 1
// and LocalNetworkAccess\SkipDomains\1, 2, …, the registry form of the
// Firefox ADMX, Firefox 151+ on Windows).
//
// Each list key is deleted first ("[-key]"): a list in the registry is the
// set of values under its key, so importing the file replaces the list
// instead of leaving stale higher-numbered entries behind. The file is
// encoded like regedit's own exports: UTF-16LE with a byte-order mark and
// CRLF line ends ("Windows Registry Editor Version 5.00"; regedit also reads
// an ASCII file, but not UTF-16 without the BOM).
func Reg(origins []string) ([]byte, error) {
	o, err := prepare(origins)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	line := func(s string) { b.WriteString(s + "\r\n") }
	list := func(key string, values []string) {
		line("[-" + key + "]")
		line("")
		line("[" + key + "]")
		for i, v := range values {
			line(regString(strconv.Itoa(i+1)) + "=" + regString(v))
		}
		line("")
	}
	line("Windows Registry Editor Version 5.00")
	line("")
	line("; cpsagent browser-policies: let the portals allowed to use cpsagent reach it on 127.0.0.1")
	line("; without the Local Network Access prompt. Replaces these lists (docs/admin.md, section 4).")
	line("")
	for _, k := range []string{regChrome, regEdge} {
		list(k+`\`+LoopbackPolicy, o)
		list(k+`\`+LNAPolicy, o)
	}
	line("[" + regFirefox + "]")
	line(`"Enabled"=dword:00000001`)
	line("")
	list(regFirefox+`\SkipDomains`, Hosts(o))
	return utf16LE(b.String()), nil
}

// regString quotes a .reg string (backslash and double quote escaped).
func regString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// utf16LE encodes s as UTF-16LE with a byte-order mark.
func utf16LE(s string) []byte {
	u := utf16.Encode([]rune("\ufeff" + s))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(out[2*i:], c)
	}
	return out
}
