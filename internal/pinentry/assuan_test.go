package pinentry

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	gopinentry "github.com/twpayne/go-pinentry/v4"
)

// scripted returns a proc whose program output is out; what is written to it
// is returned by the function.
func scripted(t *testing.T, out string) (*proc, func() string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{stdin: w}
	p.lr.r = strings.NewReader(out)
	return p, func() string {
		w.Close()
		b, _ := io.ReadAll(r)
		r.Close()
		return string(b)
	}
}

func TestGetPINExchange(t *testing.T) {
	tests := []struct {
		name, out string
		want      string
		wantErr   func(error) bool
		written   string
	}{
		{name: "status, comment, split data", out: "S PASSWORD_FROM_CACHE\n# comment\n\nD 12\nD %334\nOK\n", want: "1234", written: "GETPIN\n"},
		{name: "nothing typed", out: "OK\n", want: "", written: "GETPIN\n"},
		{name: "inquiry declined", out: "INQUIRE QUALITY 1\nD 1234\nOK\n", want: "1234", written: "GETPIN\nCAN\n"},
		{name: "cancel", out: "ERR 83886179 Operation cancelled <Pinentry>\n", wantErr: gopinentry.IsCancelled},
		{name: "timeout with status", out: "S ERROR tty.? 83886142 \nERR 83886142 Timeout <Pinentry>\n", wantErr: func(err error) bool {
			var ae *gopinentry.AssuanError
			return errors.As(err, &ae) && ae.Code == codeTimeout
		}},
		{name: "garbage", out: "D 1234\nHELLO 1234\n", wantErr: func(err error) bool { return err == errUnexpected }},
		{name: "bad ERR", out: "ERR x\n", wantErr: func(err error) bool { return err == errUnexpected }},
		{name: "EOF", out: "D 1234\n", wantErr: func(err error) bool { return errors.Is(err, io.EOF) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, written := scripted(t, tt.out)
			s, err := p.getPIN()
			if tt.wantErr != nil {
				if s != nil || !tt.wantErr(err) {
					t.Fatalf("getPIN = %v, %v", s, err)
				}
				if err != nil && strings.Contains(err.Error(), "1234") {
					t.Fatalf("the error shows the PIN: %v", err)
				}
				return
			}
			if err != nil || string(s.Bytes()) != tt.want {
				t.Fatalf("getPIN = %q, %v; want %q", s.Bytes(), err, tt.want)
			}
			if got := written(); got != tt.written {
				t.Fatalf("written %q, want %q", got, tt.written)
			}
			// data lines are zeroed in the read buffer once decoded
			if strings.Contains(string(p.lr.buf[:]), "D 12") {
				t.Fatal("the PIN is still in the read buffer")
			}
		})
	}
}

func TestConfirmDecision(t *testing.T) {
	other := errors.New("x")
	tests := []struct {
		in      error
		want    Decision
		wantErr error
	}{
		{nil, AllowOnce, nil},
		{&gopinentry.AssuanError{Code: codeNotConfirmed}, AllowAlways, nil},
		{&gopinentry.AssuanError{Code: codeCancelled}, Refuse, nil},
		{&gopinentry.AssuanError{Code: codeTimeout}, Refuse, &gopinentry.AssuanError{}},
		{other, Refuse, other},
	}
	for _, tt := range tests {
		d, err := confirmDecision(tt.in)
		if d != tt.want || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("confirmDecision(%v) = %v, %v", tt.in, d, err)
		}
	}
}
