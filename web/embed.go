// Package web holds the browser side of cpsagent: the client library
// (src/cpsagent.js, an npm package with TypeScript declarations) and the
// static page of the demo portal (demo/). This file embeds both so that Go
// code (internal/demoportal) can serve them from the binary.
package web

import (
	"embed"
	"io/fs"
)

//go:embed src/cpsagent.js src/cpsagent.d.ts
var client embed.FS

//go:embed demo
var demo embed.FS

// ClientJS returns the client library, an ES module.
func ClientJS() []byte {
	b, err := client.ReadFile("src/cpsagent.js")
	if err != nil {
		panic("web: embedded client missing: " + err.Error()) // cannot happen: go:embed checked it at build time
	}
	return b
}

// ClientTypes returns the TypeScript declarations of the client library.
func ClientTypes() []byte {
	b, err := client.ReadFile("src/cpsagent.d.ts")
	if err != nil {
		panic("web: embedded declarations missing: " + err.Error())
	}
	return b
}

// Demo returns the demo portal's static files (index.html, app.js,
// style.css) rooted at the demo directory.
func Demo() fs.FS {
	sub, err := fs.Sub(demo, "demo")
	if err != nil {
		panic("web: embedded demo missing: " + err.Error())
	}
	return sub
}
