package api

import (
	"strings"
	"testing"
)

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct {
		in, want string // want "" = refused
	}{
		{"https://portal.fr", "https://portal.fr"},
		{"https://PORTAL.fr", "https://portal.fr"},
		{"HTTPS://Portal.FR", "https://portal.fr"},
		{"https://portal.fr:443", "https://portal.fr"},
		{"http://localhost:80", "http://localhost"},
		{"https://portal.fr:8443", "https://portal.fr:8443"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"https://127.0.0.1:8443", "https://127.0.0.1:8443"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"https://[0:0:0:0:0:0:0:1]", "https://[::1]"},
		{"https://xn--portl-8qa.fr", "https://xn--portl-8qa.fr"},
		{"https://a_b.example", "https://a_b.example"},
		// refused
		{"", ""},
		{"null", ""},
		{"https://portal.fr/", ""},
		{"https://portal.fr/path", ""},
		{"https://portal.fr?x=1", ""},
		{"https://portal.fr#f", ""},
		{"https://user@portal.fr", ""},
		{"https://portal.fr.", ""},
		{"https://portal..fr", ""},
		{"https://.portal.fr", ""},
		{"https://portal.fr:", ""},
		{"https://portal.fr:0", ""},
		{"https://portal.fr:0443", ""},
		{"https://portal.fr:65536", ""},
		{"https://portal.fr:x", ""},
		{"https://portail.fr, https://evil.example", ""},
		{"https://portal.fr https://evil.example", ""},
		{"https://portäl.fr", ""},
		{"https://portal.fr\t", ""},
		{" https://portal.fr", ""},
		{"ftp://portal.fr", ""},
		{"file://", ""},
		{"data:text/html,x", ""},
		{"chrome-extension://abc", ""},
		{"https://", ""},
		{"https://127.1", ""},
		{"https://2130706433", ""},
		{"https://0x7f.0.0.1", ""},
		{"https://127.000.000.001", ""},
		{"https://1.2.3.4.5", ""},
		{"https://[::1", ""},
		{"https://[fe80::1%25eth0]", ""},
		{"https://[127.0.0.1]", ""},
		{"https://[::1]x", ""},
		{"https://-portal.fr", ""},
		{"https://portal-.fr", ""},
		{"https://por%74al.fr", ""},
		{"https://portal.fr\\@evil", ""},
		{"https://" + strings.Repeat("a", 250) + ".fr", ""},
		{"https://" + strings.Repeat("a", 64) + ".fr", ""},
	}
	for _, tc := range tests {
		got, err := NormalizeOrigin(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("NormalizeOrigin(%q) = %q, want refusal", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseAllowedOrigin(t *testing.T) {
	for _, ok := range []string{"https://portal.test", " https://portal.test ", "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:8080"} {
		if _, err := ParseAllowedOrigin(ok); err != nil {
			t.Errorf("ParseAllowedOrigin(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"http://portal.test", "https://portal.test/", "*", "null", "https://*.portal.test", "http://localhost.evil.example"} {
		if _, err := ParseAllowedOrigin(bad); err == nil {
			t.Errorf("ParseAllowedOrigin(%q) accepted", bad)
		}
	}
}

// FuzzNormalizeOrigin checks that the normaliser is idempotent, never
// returns something a browser could not send, and never panics.
func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://portal.fr", "https://PORTAL.fr:443", "http://[::1]:80", "null", "https://portal.fr.", "https://127.1",
		"https://[0:0::1]:8443", "https://a.b.c.d.e:1", "https://0x7f.1", "https://xn--80ak6aa92e.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeOrigin(s)
		if err != nil {
			return
		}
		n2, err := NormalizeOrigin(n)
		if err != nil || n2 != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, n2, err)
		}
		if len(n) > MaxOriginLen {
			t.Fatalf("bad result %q", n)
		}
		if rest := n[strings.Index(n, "://")+3:]; strings.ContainsAny(rest, "/?#@ ,%") || strings.HasSuffix(rest, ".") {
			t.Fatalf("result %q has a path, list or trailing dot", n)
		}
		if strings.ToLower(n) != n {
			t.Fatalf("result %q is not lower case", n)
		}
		if strings.HasSuffix(n, ":443") && strings.HasPrefix(n, "https:") || strings.HasSuffix(n, ":80") && strings.HasPrefix(n, "http:") {
			t.Fatalf("default port kept: %q", n)
		}
	})
}
