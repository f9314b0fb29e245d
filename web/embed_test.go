package web

import (
	"bytes"
	"io/fs"
	"testing"
)

func TestEmbeddedAssets(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"client", ClientJS(), "export class CpsAgent"},
		{"types", ClientTypes(), "export declare class CpsAgent"},
	}
	for _, tc := range tests {
		if !bytes.Contains(tc.data, []byte(tc.want)) {
			t.Errorf("%s: %q not found", tc.name, tc.want)
		}
	}
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := fs.ReadFile(Demo(), name)
		if err != nil {
			t.Fatalf("demo %s: %v", name, err)
		}
		if len(b) == 0 {
			t.Errorf("demo %s is empty", name)
		}
	}
	// The demo page must load the client from the portal, not a CDN.
	html, _ := fs.ReadFile(Demo(), "index.html")
	if bytes.Contains(html, []byte("http://")) || bytes.Contains(html, []byte("https://")) {
		t.Error("index.html refers to an absolute URL; the page must only load its own origin")
	}
}
