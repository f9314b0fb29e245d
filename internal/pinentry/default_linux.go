package pinentry

import (
	"fmt"
	"strings"
)

// defaultProgram picks a graphical pinentry when a display is available, else
// a terminal one (which needs a tty: GPG_TTY is passed as --ttyname).
func defaultProgram(getenv func(string) string, lookPath func(string) (string, error)) (string, []string, error) {
	graphical := getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != ""
	candidates := []string{"pinentry-curses", "pinentry-tty"}
	if graphical {
		candidates = []string{"pinentry-gnome3", "pinentry-gtk-2", "pinentry-qt", "pinentry"}
	}
	for _, name := range candidates {
		path, err := lookPath(name)
		if err != nil {
			continue
		}
		var args []string
		if tty := getenv("GPG_TTY"); !graphical && tty != "" {
			args = []string{"--ttyname", tty}
		}
		return path, args, nil
	}
	return "", nil, fmt.Errorf("%w: none of %s is installed (install e.g. the Debian package pinentry-gnome3 or pinentry-gtk2, or configure the program)",
		ErrUnavailable, strings.Join(candidates, ", "))
}
