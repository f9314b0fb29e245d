package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, data := range []string{"first", "second, longer than the first"} {
		if err := WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	if fi, _ := os.Stat(p); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("%d entries in the directory, want only the file", len(es))
	}
}

// A symbolic link at the target is replaced, never followed.
func TestWriteFileReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "link")
	if err := os.Symlink(victim, p); err != nil {
		t.Skip(err)
	}
	if err := WriteFile(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link was followed: victim holds %q", b)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("target still a link: %v %v", fi, err)
	}
}

// With TempDir, nothing but the target appears in the target's directory;
// a failed write leaves no temporary file behind.
func TestWriteFileTempDirAndFailure(t *testing.T) {
	target, tmp := t.TempDir(), t.TempDir()
	p := filepath.Join(target, "cpsagent.json")
	if err := WriteFile(p, []byte("{}"), 0o644, Options{TempDir: tmp}); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(target); len(es) != 1 {
		t.Errorf("%d entries in the target directory", len(es))
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Errorf("temporary files left: %v", es)
	}
	// The rename fails: the target is a non-empty directory.
	blocker := filepath.Join(target, "dir")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(blocker, []byte("x"), 0o644, Options{TempDir: tmp}); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Errorf("temporary files left after a failure: %v", es)
	}
}
