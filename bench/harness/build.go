package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModulePath is the agent's Go module.
const ModulePath = "github.com/cpsagent/cpsagent"

// ErrNoModule: the module root (go.mod of ModulePath) was not found.
var ErrNoModule = errors.New("harness: module root not found")

// ModuleRoot returns the directory of the agent's go.mod, searched upwards
// from the working directory (then from CPSAGENT_ROOT).
func ModuleRoot() (string, error) {
	starts := []string{os.Getenv("CPSAGENT_ROOT")}
	if wd, err := os.Getwd(); err == nil {
		starts = append([]string{wd}, starts...)
	}
	for _, s := range starts {
		if s == "" {
			continue
		}
		for d := s; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && strings.Contains(string(b), "module "+ModulePath+"\n") {
				return d, nil
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "", ErrNoModule
}

// BuildOptions selects how the agent is built.
type BuildOptions struct {
	// Release builds like packaging/build.sh: -trimpath -ldflags "-s -w".
	Release bool
	// Race adds -race (tests run under -race build the agent the same way).
	Race bool
	// Tags are build tags (e.g. "notray").
	Tags []string
}

// BuildAgent builds ./cmd/cpsagent into out.
func BuildAgent(ctx context.Context, out string, o BuildOptions) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", out}
	if o.Release {
		args = append(args, "-trimpath", "-ldflags", "-s -w")
	}
	if o.Race {
		args = append(args, "-race")
	}
	if len(o.Tags) > 0 {
		args = append(args, "-tags", strings.Join(o.Tags, ","))
	}
	args = append(args, ModulePath+"/cmd/cpsagent")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("harness: go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}
