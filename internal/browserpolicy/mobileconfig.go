package browserpolicy

import (
	"crypto/sha1" //nolint:gosec // RFC 9562 name-based UUID (version 5), not a security use
	"encoding/xml"
	"fmt"
	"strings"
)

// ProfileIdentifier is the PayloadIdentifier of the macOS profile: installing
// a newer profile with the same identifier replaces the older one.
const ProfileIdentifier = "io.github.cpsagent.browser-policies"

// macPayloads are the preference domains the profile manages.
var macPayloads = []struct{ domain, name string }{
	{"com.google.Chrome", "Google Chrome"},
	{"com.microsoft.Edge", "Microsoft Edge"},
}

// MobileConfig returns a macOS configuration profile (an unsigned XML
// plist) with one payload per browser (com.google.Chrome,
// com.microsoft.Edge) that sets both list policies. Its UUIDs are derived
// from the origins (name-based UUIDs), so the same origins always give the
// same bytes. Firefox is not included (its macOS policies need
// EnterprisePoliciesEnabled and are usually deployed apart).
func MobileConfig(origins []string) ([]byte, error) {
	o, err := prepare(origins)
	if err != nil {
		return nil, err
	}
	content := strings.Join(o, "\n")
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n<dict>\n")
	b.WriteString("\t<key>PayloadContent</key>\n\t<array>\n")
	for _, p := range macPayloads {
		b.WriteString("\t\t<dict>\n")
		for _, k := range []string{LoopbackPolicy, LNAPolicy} {
			kv(&b, 3, k, "")
			b.WriteString("\t\t\t<array>\n")
			for _, s := range o {
				b.WriteString("\t\t\t\t<string>" + esc(s) + "</string>\n")
			}
			b.WriteString("\t\t\t</array>\n")
		}
		kv(&b, 3, "PayloadDisplayName", p.name+": cpsagent portals")
		kv(&b, 3, "PayloadIdentifier", ProfileIdentifier+"."+p.domain)
		kv(&b, 3, "PayloadType", p.domain)
		kv(&b, 3, "PayloadUUID", nameUUID(p.domain+"\n"+content))
		b.WriteString("\t\t\t<key>PayloadVersion</key>\n\t\t\t<integer>1</integer>\n")
		b.WriteString("\t\t</dict>\n")
	}
	b.WriteString("\t</array>\n")
	kv(&b, 1, "PayloadDescription", "Lets the web portals allowed to use cpsagent reach it on 127.0.0.1 without the Local Network Access prompt: "+strings.Join(o, ", ")+".")
	kv(&b, 1, "PayloadDisplayName", "cpsagent: browser policies")
	kv(&b, 1, "PayloadIdentifier", ProfileIdentifier)
	kv(&b, 1, "PayloadScope", "System")
	kv(&b, 1, "PayloadType", "Configuration")
	kv(&b, 1, "PayloadUUID", nameUUID("profile\n"+content))
	b.WriteString("\t<key>PayloadVersion</key>\n\t<integer>1</integer>\n")
	b.WriteString("</dict>\n</plist>\n")
	return []byte(b.String()), nil
}

// kv writes <key>k</key> and, when v is not empty, <string>v</string>.
func kv(b *strings.Builder, depth int, k, v string) {
	ind := strings.Repeat("\t", depth)
	b.WriteString(ind + "<key>" + esc(k) + "</key>\n")
	if v != "" {
		b.WriteString(ind + "<string>" + esc(v) + "</string>\n")
	}
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// uuidNamespace is the RFC 9562 URL namespace; the names are
// "https://cpsagent.github.io/browser-policies#" + content.
var uuidNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// nameUUID returns the version-5 (SHA-1, name-based) UUID of name, in upper
// case as Apple tools write them.
func nameUUID(name string) string {
	h := sha1.New() //nolint:gosec // see import
	h.Write(uuidNamespace[:])
	h.Write([]byte("https://cpsagent.github.io/browser-policies#" + name))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]))
}
