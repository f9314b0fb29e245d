package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports (the kernel's ABI, not CONFIG_HZ).
const clockTick = 10 * time.Millisecond

// ErrProcFormat: a /proc file did not have the expected layout.
var ErrProcFormat = errors.New("harness: unexpected /proc format")

// ProcSample is one reading of /proc/PID.
type ProcSample struct {
	At         time.Time     `json:"-"`
	CPU        time.Duration `json:"cpu"`    // utime + stime, all threads
	RSSKiB     int64         `json:"rssKiB"` // VmRSS
	HWMKiB     int64         `json:"hwmKiB"` // VmHWM (peak RSS)
	Threads    int           `json:"threads"`
	VolCtx     int64         `json:"voluntaryCtxSwitches"`    // summed over /proc/PID/task/*
	InvolCtx   int64         `json:"nonvoluntaryCtxSwitches"` // summed over /proc/PID/task/*
	FDs        int           `json:"fds"`
	Goroutines int           `json:"goroutines,omitempty"` // filled by callers that ask the agent
}

// Wakeups is the number of context switches (voluntary + involuntary) of
// all threads: each is the process going to sleep or being preempted, so
// an idle process that never wakes up keeps it constant.
func (s ProcSample) Wakeups() int64 { return s.VolCtx + s.InvolCtx }

// ReadProc samples /proc/PID (Linux).
func ReadProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, err
	}
	if s.CPU, err = ParseStatCPU(string(b)); err != nil {
		return s, err
	}
	b, err = os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	st, err := ParseStatus(string(b))
	if err != nil {
		return s, err
	}
	s.RSSKiB, s.HWMKiB, s.Threads = st.RSSKiB, st.HWMKiB, st.Threads
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "status"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		ts, err := ParseStatus(string(b))
		if err != nil {
			return s, err
		}
		s.VolCtx += ts.VolCtx
		s.InvolCtx += ts.InvolCtx
	}
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	return s, nil
}

// ParseStatCPU returns utime + stime from the content of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so the
// fields are counted after its last ')'.
func ParseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: stat without ')'", ErrProcFormat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: stat has %d fields after the name", ErrProcFormat, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || ut < 0 || st < 0 {
		return 0, fmt.Errorf("%w: utime %q stime %q", ErrProcFormat, f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, nil
}

// StatusFields are the lines of /proc/PID/status the harness uses.
type StatusFields struct {
	RSSKiB, HWMKiB   int64
	Threads          int
	VolCtx, InvolCtx int64
}

// ParseStatus reads VmRSS, VmHWM, Threads and the context switch counters
// from the content of /proc/PID/status (or /proc/PID/task/TID/status).
func ParseStatus(status string) (StatusFields, error) {
	var f StatusFields
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &f.RSSKiB
		case "VmHWM":
			dst = &f.HWMKiB
		case "voluntary_ctxt_switches":
			dst = &f.VolCtx
		case "nonvoluntary_ctxt_switches":
			dst = &f.InvolCtx
		case "Threads":
			n, err := strconv.Atoi(v)
			if err != nil {
				return f, fmt.Errorf("%w: Threads %q", ErrProcFormat, v)
			}
			f.Threads = n
			seen++
			continue
		default:
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return f, fmt.Errorf("%w: %s %q", ErrProcFormat, k, v)
		}
		*dst = n
		seen++
	}
	if seen == 0 {
		return f, fmt.Errorf("%w: no known field in status", ErrProcFormat)
	}
	return f, nil
}

// CPUPercent is the CPU used between two samples as a percentage of one
// core over the wall time between them.
func CPUPercent(a, b ProcSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}
