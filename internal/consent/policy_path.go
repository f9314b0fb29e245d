package consent

import (
	"path/filepath"

	"github.com/cpsagent/cpsagent/internal/config"
)

// PolicyFileName is the machine policy's file name inside config.PolicyDir().
const PolicyFileName = "policy.json"

// DefaultPolicyPath is where the machine policy is read on this OS:
// /etc/cpsagent/policy.json (Linux, BSD), %ProgramData%\cpsagent\policy.json
// (Windows), /Library/Application Support/cpsagent/policy.json (macOS).
func DefaultPolicyPath() string { return filepath.Join(config.PolicyDir(), PolicyFileName) }
