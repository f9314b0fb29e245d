package api

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MaxOriginLen bounds an Origin header (Web eID uses the same bound).
const MaxOriginLen = 255

var errOrigin = errors.New("api: malformed origin")

// NormalizeOrigin returns the canonical serialisation of a browser origin,
// scheme://host[:port], or an error when s is not one.
//
// Canonicalisation only does what browsers do themselves: scheme and host in
// lower case, the scheme's default port elided. Everything a browser never
// sends in an Origin header is refused instead of being "repaired": "null",
// a path (even "/"), a query or fragment, user info, a trailing dot on the
// host, empty labels, non-ASCII (IDNs arrive as punycode), spaces or a list
// of origins, ports with leading zeros, non-canonical IPv4 forms (127.1,
// 2130706433), zone identifiers, and schemes other than http and https.
//
// The result is what the authentication token binds (SHA-256(origin)), so
// two strings that name the same web origin always give the same result.
func NormalizeOrigin(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", errOrigin)
	}
	if len(s) > MaxOriginLen {
		return "", fmt.Errorf("%w: longer than %d characters", errOrigin, MaxOriginLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return "", fmt.Errorf("%w: contains a space, control or non-ASCII character", errOrigin)
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", fmt.Errorf("%w: no scheme", errOrigin)
	}
	scheme = strings.ToLower(scheme)
	var defPort string
	switch scheme {
	case "https":
		defPort = "443"
	case "http":
		defPort = "80"
	default:
		return "", fmt.Errorf("%w: scheme must be https (or http)", errOrigin)
	}
	if strings.ContainsAny(rest, "/?#@\\,;%") {
		return "", fmt.Errorf("%w: path, query, user info or list not allowed", errOrigin)
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return "", err
	}
	if port == defPort {
		port = ""
	}
	out := scheme + "://" + host
	if port != "" {
		out += ":" + port
	}
	return out, nil
}

// splitHostPort splits and validates "host[:port]"; the host comes back
// lower-case, an IPv6 literal in brackets and canonical form.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("%w: unterminated IPv6 literal", errOrigin)
		}
		ip, perr := netip.ParseAddr(s[1:end])
		if perr != nil || !ip.Is6() || ip.Zone() != "" {
			return "", "", fmt.Errorf("%w: bad IPv6 literal", errOrigin)
		}
		host = "[" + ip.String() + "]"
		s = s[end+1:]
		if s != "" {
			if s[0] != ':' {
				return "", "", fmt.Errorf("%w: junk after IPv6 literal", errOrigin)
			}
			port, err = parsePort(s[1:])
		}
		return host, port, err
	}
	h, p, hasPort := strings.Cut(s, ":")
	if hasPort {
		if port, err = parsePort(p); err != nil {
			return "", "", err
		}
	}
	host, err = checkHostname(strings.ToLower(h))
	return host, port, err
}

func parsePort(p string) (string, error) {
	if p == "" || len(p) > 5 || (p[0] == '0') {
		return "", fmt.Errorf("%w: bad port", errOrigin)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%w: bad port", errOrigin)
	}
	return p, nil
}

// checkHostname accepts LDH labels (plus '_', which browsers allow) and
// canonical dotted-quad IPv4. A host whose last label is numeric is an IPv4
// address for the WHATWG URL parser, so it must be a canonical one.
func checkHostname(h string) (string, error) {
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("%w: bad host length", errOrigin)
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("%w: empty label or trailing dot", errOrigin)
		}
		if len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: bad label", errOrigin)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: bad character in host", errOrigin)
			}
		}
	}
	last := labels[len(labels)-1]
	if isDigits(last) || strings.HasPrefix(last, "0x") {
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is4() || ip.String() != h {
			return "", fmt.Errorf("%w: non-canonical IPv4 address", errOrigin)
		}
	}
	return h, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ParseAllowedOrigin validates an allow-list entry (config file or
// --allow-origin). It must be a canonical origin (see NormalizeOrigin) with
// the https scheme; http is accepted only for loopback hosts (localhost,
// 127.0.0.1, [::1]), where a browser treats the page as a secure context,
// so that a portal can be developed locally.
func ParseAllowedOrigin(s string) (string, error) {
	o, err := NormalizeOrigin(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("allowed origin %q: %w", s, err)
	}
	if strings.HasPrefix(o, "http://") {
		host, _, _ := splitHostPort(strings.TrimPrefix(o, "http://"))
		if host != "localhost" && host != "127.0.0.1" && host != "[::1]" {
			return "", fmt.Errorf("allowed origin %q: only https origins may use the agent (http only for localhost)", s)
		}
	}
	return o, nil
}
