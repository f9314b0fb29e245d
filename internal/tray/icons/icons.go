// Package icons holds the tray icons, one per state, drawn by gen.go.
package icons

import "embed"

//go:generate go run gen.go

// FS holds <state>.png and <state>.ico for the states noreader, nocard,
// ready, busy, error and warning.
//
//go:embed *.png *.ico
var FS embed.FS
