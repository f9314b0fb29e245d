package consent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidOrigin is returned for a string that is not a serialised web
// origin.
var ErrInvalidOrigin = errors.New("consent: invalid origin")

// NormalizeOrigin returns the canonical form of a web origin as this package
// stores and compares it: lower-case scheme and host, default port (443 for
// https, 80 for http) removed. It refuses anything that a browser would not
// send as an Origin header: another scheme than http/https, a path (even
// "/"), query, fragment, user info, a non-ASCII host (browsers send
// punycode), a host ending with a dot, "null".
//
// It must agree with the API's Origin normalisation: both sides compare the
// strings it returns.
func NormalizeOrigin(s string) (string, error) {
	if s == "" || len(s) > 255 || s != strings.TrimSpace(s) {
		return "", fmt.Errorf("%w: %q", ErrInvalidOrigin, clip(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "", fmt.Errorf("%w: non-ASCII or control character", ErrInvalidOrigin)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrInvalidOrigin, clip(s))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", fmt.Errorf("%w: scheme must be https or http: %q", ErrInvalidOrigin, clip(s))
	}
	if u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.Contains(s, "#") {
		return "", fmt.Errorf("%w: an origin has no path, query, fragment or user: %q", ErrInvalidOrigin, clip(s))
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.HasSuffix(host, ".") || strings.HasPrefix(host, ".") || strings.Contains(host, "..") {
		return "", fmt.Errorf("%w: bad host in %q", ErrInvalidOrigin, clip(s))
	}
	if strings.Contains(host, ":") { // IPv6 literal
		ip := net.ParseIP(host)
		if ip == nil || ip.To4() != nil && !strings.Contains(u.Host, "[") {
			return "", fmt.Errorf("%w: bad host in %q", ErrInvalidOrigin, clip(s))
		}
		host = "[" + ip.String() + "]"
	} else {
		for _, c := range host {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
				return "", fmt.Errorf("%w: bad host in %q", ErrInvalidOrigin, clip(s))
			}
		}
	}
	port := u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("%w: empty port in %q", ErrInvalidOrigin, clip(s))
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", fmt.Errorf("%w: bad port in %q", ErrInvalidOrigin, clip(s))
		}
		if scheme == "https" && n == 443 || scheme == "http" && n == 80 {
			port = ""
		}
	}
	out := scheme + "://" + host
	if port != "" {
		out += ":" + port
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
