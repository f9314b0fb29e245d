//go:build !linux && !darwin && !windows

package pinentry

import "fmt"

// defaultProgram: on other systems the program must be configured.
func defaultProgram(_ func(string) string, lookPath func(string) (string, error)) (string, []string, error) {
	for _, name := range []string{"pinentry-gtk-2", "pinentry-qt", "pinentry"} {
		if path, err := lookPath(name); err == nil {
			return path, nil, nil
		}
	}
	return "", nil, fmt.Errorf("%w: no pinentry program found, configure one", ErrUnavailable)
}
