// Package atomicfile replaces a file in one step: the data goes to a
// temporary file on the same file system, is flushed to disk, and is renamed
// over the target, so a reader sees the old file or the new one, never a
// part. Renaming also replaces a symbolic link instead of following it.
package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
)

// Options change where the temporary file is made.
type Options struct {
	// TempDir holds the temporary file (default: the target's directory).
	// It must be on the target's file system; use it when a program reads
	// every file of the target's directory (browsers' policy folders).
	TempDir string
}

// WriteFile writes data to path with permissions perm. The temporary file
// is removed on any failure; the directory entry is flushed after the
// rename where the system allows it (not on Windows).
func WriteFile(path string, data []byte, perm os.FileMode, o ...Options) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmpDir := dir
	if len(o) > 0 && o[0].TempDir != "" {
		tmpDir = o[0].TempDir
	}
	f, err := os.CreateTemp(tmpDir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// On Windows Chmod only sets the read-only attribute: the file keeps
	// the ACL it inherits.
	if runtime.GOOS != "windows" {
		if err = f.Chmod(perm); err != nil {
			return err
		}
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if runtime.GOOS != "windows" {
		if d, derr := os.Open(dir); derr == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}
