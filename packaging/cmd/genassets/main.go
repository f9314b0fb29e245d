// Command genassets writes the autostart files of packaging/ from the
// templates of internal/install, rendered for the packaged binary paths, so
// that "cpsagent install" and the packages never drift apart
// (internal/install TestPackagingCopies checks it).
//
//	go run ./packaging/cmd/genassets   # from the repository root
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cpsagent/cpsagent/internal/install"
)

func main() {
	files := []struct {
		path string
		data []byte
	}{
		{"packaging/linux/cpsagent.service", install.RenderUnit("/usr/bin/cpsagent")},
		{"packaging/linux/cpsagent-autostart.desktop", install.RenderDesktop("/usr/bin/cpsagent")},
		{"packaging/macos/io.github.cpsagent.plist", install.RenderPlist("/usr/local/bin/cpsagent")},
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "genassets:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "genassets:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", f.path)
	}
}
