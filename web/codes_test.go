package web

import (
	"regexp"
	"slices"
	"testing"

	"github.com/cpsagent/cpsagent/internal/api"
)

// TestClientKnowsEveryAgentCode keeps src/cpsagent.js (ErrorCode, its
// remediation texts and the TypeScript union) in step with the agent's
// problem codes.
func TestClientKnowsEveryAgentCode(t *testing.T) {
	js, dts := string(ClientJS()), string(ClientTypes())
	enum := regexp.MustCompile(`(?m)^  [A-Z_]+: '([a-z_]+)',$`)
	var known []string
	for _, m := range enum.FindAllStringSubmatch(js, -1) {
		known = append(known, m[1])
	}
	if len(known) < 20 {
		t.Fatalf("found only %d ErrorCode entries in cpsagent.js", len(known))
	}
	for code := range api.Codes() {
		if !slices.Contains(known, code) {
			t.Errorf("cpsagent.js ErrorCode lacks the agent code %q", code)
		}
		if !regexp.MustCompile(`(?m)^  ` + code + `: \{`).MatchString(js) {
			t.Errorf("cpsagent.js REMEDIATION lacks %q", code)
		}
		if !regexp.MustCompile(`\| '` + code + `'`).MatchString(dts) {
			t.Errorf("cpsagent.d.ts ApiErrorCode lacks %q", code)
		}
	}
}
