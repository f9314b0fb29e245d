package config

import "path/filepath"

// QuirksFileName is the card quirks file in PolicyDir (card facts that a
// field report corrects without a rebuild; internal/card/cps, quirksfile.go,
// docs/field-test.md).
const QuirksFileName = "quirks.json"

// QuirksFile is the machine-wide card quirks file the agent and
// `cpsagent probe` read at start, when it exists:
//
//	Linux, BSD: /etc/cpsagent/quirks.json
//	macOS:      /Library/Application Support/cpsagent/quirks.json
//	Windows:    %ProgramData%\cpsagent\quirks.json
//
// It is an administrator's file (like the rest of PolicyDir): a user cannot
// change how the agent talks to the card.
func QuirksFile() string { return filepath.Join(PolicyDir(), QuirksFileName) }
