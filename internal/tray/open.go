package tray

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
)

// OpenPath shows a file or folder with the desktop's default application:
// xdg-open (Linux, BSD), open (macOS), explorer (Windows). It does not wait
// for the application.
func OpenPath(path string) error {
	if path == "" {
		return errors.New("tray: nothing to open")
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("explorer.exe", path)
	case "darwin":
		cmd = exec.Command("open", path)
	default:
		cmd = exec.Command("xdg-open", path)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() //nolint:errcheck // explorer.exe exits 1 on success
	return nil
}
