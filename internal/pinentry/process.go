package pinentry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	gopinentry "github.com/twpayne/go-pinentry/v4"
)

// maxLine bounds an Assuan line (the protocol limit is 1000 bytes).
const maxLine = 4096

var errLineTooLong = errors.New("pinentry: response line too long")

// proc is the gopinentry.Process given to go-pinentry. It runs the program in
// its own process group, kills the group when ctx is done, and reads lines
// into a fixed buffer that is zeroed on Close (PIN data lines pass through
// it).
type proc struct {
	ctx       context.Context
	env       []string
	closeWait time.Duration // how long Close waits for a clean exit before killing
	onStart   func(pid int) // test hook

	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	lr     lineReader

	exited    chan struct{} // closed once the process has been reaped
	stopWatch chan struct{}
	killOnce  sync.Once
	closeOnce sync.Once
}

var _ gopinentry.Process = (*proc)(nil)

func newProc(ctx context.Context, env []string, closeWait time.Duration) *proc {
	return &proc{
		ctx:       ctx,
		env:       env,
		closeWait: closeWait,
		exited:    make(chan struct{}),
		stopWatch: make(chan struct{}),
	}
}

// Start implements gopinentry.Process.
func (p *proc) Start(name string, args []string) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), p.env...)
	setProcessGroup(cmd)
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	// Our own pipes rather than StdinPipe/StdoutPipe: Wait (run concurrently
	// below) must not close stdout before the last lines are read.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, nil
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return err
	}
	p.cmd, p.stdin, p.stdout = cmd, inW, outR
	p.lr.r = outR
	if p.onStart != nil {
		p.onStart(cmd.Process.Pid)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	go func() {
		select {
		case <-p.ctx.Done():
			p.kill()
		case <-p.stopWatch:
		}
	}()
	return nil
}

// kill kills the process group and closes our end of stdout, so that a
// blocked read returns at once even if a grandchild escaped the group.
func (p *proc) kill() {
	p.killOnce.Do(func() {
		select {
		case <-p.exited:
		default:
			killProcessGroup(p.cmd)
		}
		p.stdout.Close()
	})
}

// ReadLine implements gopinentry.Process. The line is valid until the next
// call.
func (p *proc) ReadLine() ([]byte, bool, error) {
	line, err := p.lr.readLine()
	return line, false, err
}

// Write implements gopinentry.Process.
func (p *proc) Write(b []byte) (int, error) {
	return p.stdin.Write(b)
}

// Close implements gopinentry.Process: it closes stdin, gives the program
// closeWait to exit, then kills it, and zeroes the read buffer.
func (p *proc) Close() error {
	p.closeOnce.Do(func() {
		if p.cmd == nil {
			return
		}
		p.stdin.Close()
		t := time.NewTimer(p.closeWait)
		select {
		case <-p.exited:
		case <-p.ctx.Done():
		case <-t.C:
		}
		t.Stop()
		p.kill()
		<-p.exited
		close(p.stopWatch)
		p.lr.wipe()
	})
	return nil
}

// lineReader reads '\n'-terminated lines into a fixed buffer that it can wipe.
type lineReader struct {
	r          io.Reader
	buf        [maxLine]byte
	start, end int
}

func (lr *lineReader) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.start:lr.end], '\n'); i >= 0 {
			line := lr.buf[lr.start : lr.start+i]
			lr.start += i + 1
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		if lr.start > 0 { // move the partial line to the front, wipe the rest
			n := copy(lr.buf[:], lr.buf[lr.start:lr.end])
			clear(lr.buf[n:lr.end])
			lr.start, lr.end = 0, n
		}
		if lr.end == len(lr.buf) {
			return nil, errLineTooLong
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

func (lr *lineReader) wipe() {
	clear(lr.buf[:])
	lr.start, lr.end = 0, 0
}
