package pinentry

import "fmt"

// macPaths are where Homebrew (Apple silicon, Intel) and GPG Suite install
// pinentry-mac, tried when it is not in PATH (a launchd agent has a short
// PATH).
var macPaths = []string{
	"/opt/homebrew/bin/pinentry-mac",
	"/usr/local/bin/pinentry-mac",
	"/usr/local/MacGPG2/libexec/pinentry-mac.app/Contents/MacOS/pinentry-mac",
}

func defaultProgram(_ func(string) string, lookPath func(string) (string, error)) (string, []string, error) {
	for _, name := range append([]string{"pinentry-mac"}, macPaths...) {
		if path, err := lookPath(name); err == nil {
			return path, nil, nil
		}
	}
	return "", nil, fmt.Errorf("%w: pinentry-mac is not installed (brew install pinentry-mac, or GPG Suite), or configure the program", ErrUnavailable)
}
