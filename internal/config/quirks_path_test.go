package config

import (
	"path/filepath"
	"testing"
)

func TestQuirksFile(t *testing.T) {
	got := QuirksFile()
	if filepath.Dir(got) != PolicyDir() || filepath.Base(got) != QuirksFileName || !filepath.IsAbs(got) {
		t.Fatalf("QuirksFile() = %q, policy dir %q", got, PolicyDir())
	}
}
