package browserpolicy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/cpsagent/cpsagent/internal/consent"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestNormalize(t *testing.T) {
	got, err := Normalize([]string{
		"https://WWW.DMP.FR", "https://www.dmp.fr:443", " https://www.dmp.fr ", // one origin, three spellings
		"https://portail.exemple-ght.fr:8443", "https://xn--hpital-exemple-0ob.fr", "http://localhost:3000",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://localhost:3000", "https://portail.exemple-ght.fr:8443", "https://www.dmp.fr", "https://xn--hpital-exemple-0ob.fr"}
	if !slices.Equal(got, want) {
		t.Fatalf("Normalize = %q, want %q", got, want)
	}
	for _, bad := range []string{"https://hôpital-exemple.fr", "http://portail.fr", "https://a.fr/", "null", "https://a.fr:0443", ""} {
		if ok, err := Normalize([]string{"https://ok.fr", bad}); err == nil || !slices.Equal(ok, []string{"https://ok.fr"}) {
			t.Errorf("Normalize(%q) = %q, %v: want an error and the valid origin", bad, ok, err)
		}
	}
}

func TestEnforced(t *testing.T) {
	f := false
	p := consent.Policy{AllowedOrigins: []string{"https://p.fr"}, DeniedOrigins: []string{"https://c2.fr"}}
	got, err := Enforced(p, []string{"https://c1.fr", "https://c2.fr", "https://p.fr"})
	if err != nil || !slices.Equal(got, []string{"https://c1.fr", "https://p.fr"}) {
		t.Fatalf("open policy: %q, %v", got, err)
	}
	p.AllowUserAdditions = &f
	if got, _ := Enforced(p, []string{"https://c1.fr"}); !slices.Equal(got, []string{"https://p.fr"}) {
		t.Fatalf("locked policy: the configuration's origins are not enforced: %q", got)
	}
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

// decodeUTF16 decodes a UTF-16LE file with its BOM.
func decodeUTF16(t *testing.T, b []byte) string {
	t.Helper()
	if len(b)%2 != 0 || !bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
		t.Fatalf("not UTF-16LE with a BOM: % x", b[:min(len(b), 8)])
	}
	u := make([]uint16, len(b)/2-1)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2+2*i:])
	}
	return string(utf16.Decode(u))
}

func TestGolden(t *testing.T) {
	sets := map[string][]string{
		// duplicates in other spellings, unsorted input
		"basic": {"https://www.dmp.fr", "https://portail.exemple-ght.fr", "https://WWW.dmp.fr:443", "https://www.dmp.fr"},
		// the same host on two ports: two origins, one Firefox host
		"ports": {"https://portail.exemple-ght.fr:8443", "https://portail.exemple-ght.fr", "http://localhost:3000"},
		// an IDN in its ASCII (punycode) form
		"idn": {"https://xn--hpital-exemple-0ob.fr", "https://www.xn--sant-epa.fr:9443"},
	}
	formats := map[string]func([]string) ([]byte, error){
		"chrome.json": ChromeJSON, "firefox.json": FirefoxJSON, "reg": Reg, "mobileconfig": MobileConfig,
	}
	for set, origins := range sets {
		for ext, render := range formats {
			t.Run(set+"."+ext, func(t *testing.T) {
				got, err := render(origins)
				if err != nil {
					t.Fatal(err)
				}
				// stable: the same origins in another order give the same bytes
				rev := slices.Clone(origins)
				slices.Reverse(rev)
				again, _ := render(rev)
				if !bytes.Equal(got, again) {
					t.Fatal("output depends on the order of the origins")
				}
				if ext == "reg" {
					golden(t, set+".reg.txt", []byte(decodeUTF16(t, got)))
					return
				}
				golden(t, set+"."+ext, got)
			})
		}
	}
	for ext, render := range formats {
		if _, err := render(nil); !errors.Is(err, ErrNoOrigin) {
			t.Errorf("%s without origins: %v", ext, err)
		}
		if _, err := render([]string{"https://a.fr/path"}); err == nil {
			t.Errorf("%s accepted an invalid origin", ext)
		}
	}
}

// TestChromeAndFirefoxShape: the exact shape docs/admin.md §4 documents.
func TestChromeAndFirefoxShape(t *testing.T) {
	c, _ := ChromeJSON([]string{"https://www.dmp.fr", "https://portail.exemple-ght.fr"})
	var cv map[string][]string
	if err := json.Unmarshal(c, &cv); err != nil || len(cv) != 2 ||
		!slices.Equal(cv[LoopbackPolicy], []string{"https://portail.exemple-ght.fr", "https://www.dmp.fr"}) ||
		!slices.Equal(cv[LoopbackPolicy], cv[LNAPolicy]) {
		t.Fatalf("chrome: %s (%v)", c, err)
	}
	f, _ := FirefoxJSON([]string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443"})
	var fv struct {
		Policies map[string]struct {
			Enabled     *bool
			SkipDomains []string
		} `json:"policies"`
	}
	dec := json.NewDecoder(bytes.NewReader(f))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fv); err != nil || len(fv.Policies) != 1 {
		t.Fatalf("firefox: %s (%v)", f, err)
	}
	lna := fv.Policies["LocalNetworkAccess"]
	if lna.Enabled == nil || !*lna.Enabled || !slices.Equal(lna.SkipDomains, []string{"portail.exemple-ght.fr", "www.dmp.fr"}) {
		t.Fatalf("firefox: %s", f)
	}
}

func TestRegEncoding(t *testing.T) {
	b, err := Reg([]string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443"})
	if err != nil {
		t.Fatal(err)
	}
	s := decodeUTF16(t, b) // regedit's own export format: UTF-16LE, BOM
	if !strings.HasPrefix(s, "Windows Registry Editor Version 5.00\r\n\r\n") {
		t.Fatalf("header: %q", s[:min(len(s), 60)])
	}
	if strings.Count(s, "\n") != strings.Count(s, "\r\n") {
		t.Fatal("a line does not end with CRLF")
	}
	for _, want := range []string{
		`[-HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome\LoopbackNetworkAllowedForUrls]`,
		`[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Edge\LocalNetworkAccessAllowedForUrls]` + "\r\n" +
			`"1"="https://portail.exemple-ght.fr:8443"` + "\r\n" + `"2"="https://www.dmp.fr"` + "\r\n",
		`[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Mozilla\Firefox\LocalNetworkAccess]` + "\r\n" + `"Enabled"=dword:00000001`,
		`[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Mozilla\Firefox\LocalNetworkAccess\SkipDomains]` + "\r\n" +
			`"1"="portail.exemple-ght.fr"` + "\r\n" + `"2"="www.dmp.fr"` + "\r\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q", want)
		}
	}
	if regString(`a"b\c`) != `"a\"b\\c"` {
		t.Error("regString escaping")
	}
}

// plistValue is a decoded plist element (enough of the format for the
// profile: dict, array, string, integer).
type plistValue struct {
	Kind  string
	Text  string
	Dict  map[string]plistValue
	Items []plistValue
}

func decodePlist(t *testing.T, d *xml.Decoder, start xml.StartElement) plistValue {
	t.Helper()
	v := plistValue{Kind: start.Name.Local}
	var key string
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if v.Kind == "dict" && tk.Name.Local == "key" {
				var k string
				if err := d.DecodeElement(&k, &tk); err != nil {
					t.Fatal(err)
				}
				key = k
				continue
			}
			child := decodePlist(t, d, tk)
			switch v.Kind {
			case "dict":
				if v.Dict == nil {
					v.Dict = map[string]plistValue{}
				}
				if key == "" {
					t.Fatalf("dict value %s without a key", tk.Name.Local)
				}
				v.Dict[key], key = child, ""
			case "array", "plist":
				v.Items = append(v.Items, child)
			default:
				t.Fatalf("<%s> inside <%s>", tk.Name.Local, v.Kind)
			}
		case xml.CharData:
			v.Text += string(tk)
		case xml.EndElement:
			return v
		}
	}
}

func TestMobileConfigIsAPlist(t *testing.T) {
	origins := []string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443"}
	b, err := MobileConfig(origins)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var root plistValue
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = decodePlist(t, d, se)
		}
	}
	if root.Kind != "plist" || len(root.Items) != 1 || root.Items[0].Kind != "dict" {
		t.Fatalf("not a plist with one dict: %+v", root)
	}
	top := root.Items[0].Dict
	if top["PayloadType"].Text != "Configuration" || top["PayloadIdentifier"].Text != ProfileIdentifier || top["PayloadVersion"].Kind != "integer" {
		t.Fatalf("profile keys: %+v", top)
	}
	uuid := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	uuids := []string{top["PayloadUUID"].Text}
	var types []string
	for _, p := range top["PayloadContent"].Items {
		types = append(types, p.Dict["PayloadType"].Text)
		uuids = append(uuids, p.Dict["PayloadUUID"].Text)
		for _, k := range []string{LoopbackPolicy, LNAPolicy} {
			var got []string
			for _, s := range p.Dict[k].Items {
				got = append(got, s.Text)
			}
			if !slices.Equal(got, []string{"https://portail.exemple-ght.fr:8443", "https://www.dmp.fr"}) {
				t.Errorf("%s %s = %q", p.Dict["PayloadType"].Text, k, got)
			}
		}
	}
	if !slices.Equal(types, []string{"com.google.Chrome", "com.microsoft.Edge"}) {
		t.Fatalf("payload types %q", types)
	}
	for _, u := range uuids {
		if !uuid.MatchString(u) {
			t.Errorf("UUID %q is not a version-5 UUID", u)
		}
	}
	if s := slices.Compact(slices.Sorted(slices.Values(uuids))); len(s) != 3 {
		t.Errorf("UUIDs not distinct: %q", uuids)
	}
	other, _ := MobileConfig([]string{"https://www.dmp.fr"})
	if bytes.Contains(other, []byte(top["PayloadUUID"].Text)) {
		t.Error("other origins, same profile UUID")
	}
}

func TestChromeCovers(t *testing.T) {
	for _, tt := range []struct {
		pattern, origin string
		want            bool
	}{
		{"https://www.dmp.fr", "https://www.dmp.fr", true},
		{"https://www.dmp.fr", "https://www.dmp.fr:8443", false},
		{"https://www.dmp.fr:8443", "https://www.dmp.fr:8443", true},
		{"https://www.dmp.fr:*", "https://www.dmp.fr:8443", true},
		{"www.dmp.fr", "https://www.dmp.fr:8443", true},
		{"[*.]dmp.fr", "https://www.dmp.fr", true},
		{"https://[*.]dmp.fr", "https://dmp.fr", true},
		{"[*.]dmp.fr", "https://evil-dmp.fr", false},
		{"http://www.dmp.fr", "https://www.dmp.fr", false},
		{"*", "https://x.fr", true},
		{"https://WWW.DMP.FR/", "https://www.dmp.fr", true},
		{"https://www.dmp.fr.", "https://www.dmp.fr", true},
		{"http://[::1]:3000", "http://[::1]:3000", true},
		{"https://other.fr", "https://www.dmp.fr", false},
	} {
		if got := chromeCovers(tt.pattern, tt.origin); got != tt.want {
			t.Errorf("chromeCovers(%q, %q) = %v", tt.pattern, tt.origin, got)
		}
	}
}

// FuzzChromeCovers: any pattern an administrator may have written is read
// without panicking, and the origin written as its own pattern, or "*",
// always covers a valid origin.
func FuzzChromeCovers(f *testing.F) {
	for _, s := range [][2]string{
		{"https://www.dmp.fr", "https://www.dmp.fr"}, {"[*.]dmp.fr", "https://www.dmp.fr:8443"},
		{"http://[::1]:3000", "http://[::1]:3000"}, {"https://[", "https://[::1]"}, {"*://*:*/x@y", "https://a.b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		_ = chromeCovers(pattern, origin)
		o, err := Normalize([]string{origin})
		if err != nil || len(o) != 1 {
			return
		}
		if !chromeCovers(o[0], o[0]) || !chromeCovers("*", o[0]) {
			t.Fatalf("%q does not cover itself (or * does not)", o[0])
		}
	})
}
