package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Single instance per user: an exclusive lock on instance.lock in the state
// directory (flock on Unix, LockFileEx on Windows; the kernel drops it when
// the process dies, so a crash never leaves a stale lock), and a small
// instance.json that says where the running agent listens, so that a second
// start can tell the user, and "cpsagent doctor" can check it.

// Files in the state directory.
const (
	InstanceLockFile = "instance.lock"
	InstanceInfoFile = "instance.json"
)

// ExitAlreadyRunning is the exit status of a start that found another
// instance (the systemd unit's RestartPreventExitStatus=).
const ExitAlreadyRunning = 3

// InstanceInfo is what the running agent publishes about itself.
type InstanceInfo struct {
	PID        int       `json:"pid"`
	Port       int       `json:"port,omitempty"`
	Addrs      []string  `json:"addrs,omitempty"` // "127.0.0.1:47180", "[::1]:47180"
	Started    time.Time `json:"started"`
	Version    string    `json:"version,omitempty"`
	Executable string    `json:"executable,omitempty"`
}

// URL is the agent's base URL ("" when no port is known).
func (i *InstanceInfo) URL() string {
	if i == nil || i.Port == 0 {
		return ""
	}
	return fmt.Sprintf("https://127.0.0.1:%d", i.Port)
}

// ErrAlreadyRunning is matched (errors.Is) by *AlreadyRunningError.
var ErrAlreadyRunning = errors.New("cpsagent is already running for this user")

// AlreadyRunningError is returned by AcquireInstance when another agent of
// the same user holds the lock.
type AlreadyRunningError struct {
	// Info is the other instance's instance.json; nil when it has not
	// written it yet (it is starting).
	Info *InstanceInfo
}

func (e *AlreadyRunningError) Error() string {
	if e.Info == nil {
		return ErrAlreadyRunning.Error() + " (starting)"
	}
	var where []string
	if e.Info.PID > 0 {
		where = append(where, fmt.Sprintf("pid %d", e.Info.PID))
	}
	if u := e.Info.URL(); u != "" {
		where = append(where, "at "+u)
	}
	if len(where) == 0 {
		return ErrAlreadyRunning.Error()
	}
	return ErrAlreadyRunning.Error() + " (" + strings.Join(where, ", ") + ")"
}

// Is makes errors.Is(err, ErrAlreadyRunning) true.
func (e *AlreadyRunningError) Is(target error) bool { return target == ErrAlreadyRunning }

// ExitCode is the process exit status for this error.
func (e *AlreadyRunningError) ExitCode() int { return ExitAlreadyRunning }

// AcquireInstance takes the per-user instance lock in stateDir (created
// 0700 if needed). It returns *AlreadyRunningError when another instance
// holds it. release removes instance.json (if it is ours) and drops the
// lock; call it once, at exit.
func AcquireInstance(stateDir string) (release func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("install: creating %s: %w", stateDir, err)
	}
	lockPath := filepath.Join(stateDir, InstanceLockFile)
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("install: opening the instance lock: %w", err)
	}
	if err := lockFile(f, true); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			info, _ := readInstanceInfo(stateDir)
			return nil, &AlreadyRunningError{Info: info}
		}
		return nil, fmt.Errorf("install: locking %s: %w", lockPath, err)
	}
	pid := os.Getpid()
	// A previous instance that crashed left its instance.json: drop it.
	_ = os.Remove(filepath.Join(stateDir, InstanceInfoFile))
	return func() {
		if info, err := readInstanceInfo(stateDir); err == nil && info.PID == pid {
			_ = os.Remove(filepath.Join(stateDir, InstanceInfoFile))
		}
		_ = unlockFile(f)
		_ = f.Close()
	}, nil
}

// PublishInstance writes instance.json; call it once the listeners are up.
// PID and Started are filled in when zero.
func PublishInstance(stateDir string, info InstanceInfo) error {
	if info.PID == 0 {
		info.PID = os.Getpid()
	}
	if info.Started.IsZero() {
		info.Started = time.Now().UTC().Truncate(time.Second)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(stateDir, InstanceInfoFile), append(b, '\n'), 0o600)
}

// RunningInstance returns the running instance's info, or
// ErrNotRunning. The info is nil (with a nil error) when an instance holds
// the lock but has not published yet.
func RunningInstance(stateDir string) (*InstanceInfo, error) {
	f, err := os.Open(filepath.Join(stateDir, InstanceLockFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockFile(f, false); err == nil {
		_ = unlockFile(f)
		return nil, ErrNotRunning
	} else if !errors.Is(err, errLocked) {
		return nil, err
	}
	info, err := readInstanceInfo(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return info, err
}

// ErrNotRunning is returned by RunningInstance when no agent runs.
var ErrNotRunning = errors.New("cpsagent is not running for this user")

func readInstanceInfo(stateDir string) (*InstanceInfo, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, InstanceInfoFile))
	if err != nil {
		return nil, err
	}
	var info InstanceInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("install: %s: %w", InstanceInfoFile, err)
	}
	return &info, nil
}

// errLocked is returned by lockFile when another process holds the lock.
var errLocked = errors.New("locked")
