package pinentry

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	gopinentry "github.com/twpayne/go-pinentry/v4"
)

// transact sends one command and reads the answer up to OK or ERR. Status
// ("S …") and comment lines are skipped, an INQUIRE is declined (no feature
// that inquires is enabled), and each data line is passed to onData (nil:
// data is ignored) and then zeroed in the read buffer. An ERR line is returned
// as a *gopinentry.AssuanError.
func (p *proc) transact(command string, onData func(data []byte)) error {
	if _, err := p.Write([]byte(command + "\n")); err != nil {
		return err
	}
	for {
		line, _, err := p.ReadLine()
		if err != nil {
			return err
		}
		switch {
		case len(line) == 0, line[0] == '#', bytes.HasPrefix(line, []byte("S ")):
		case bytes.Equal(line, []byte("OK")), bytes.HasPrefix(line, []byte("OK ")):
			return nil
		case bytes.HasPrefix(line, []byte("ERR ")):
			return parseAssuanError(line)
		case bytes.HasPrefix(line, []byte("D ")):
			if onData != nil {
				onData(line[2:])
			}
			clear(line)
		case bytes.HasPrefix(line, []byte("INQUIRE ")):
			if _, err := p.Write([]byte("CAN\n")); err != nil {
				return err
			}
		default:
			return errUnexpected
		}
	}
}

// getPIN sends GETPIN and returns the answer, decoded straight into the
// Secret (empty when nothing was typed).
func (p *proc) getPIN() (*Secret, error) {
	s := &Secret{}
	err := p.transact("GETPIN", func(data []byte) {
		// Assuan may split data over several D lines: concatenate into a
		// new buffer sized up front and wipe the old one.
		b := make([]byte, 0, s.Len()+len(data))
		b = appendUnescaped(append(b, s.Bytes()...), data)
		s.Wipe()
		s.b = b
	})
	if err != nil {
		s.Wipe()
		return nil, err
	}
	return s, nil
}

// command sends a command that must answer OK, e.g. SETERROR.
func (p *proc) command(command string) error {
	return p.transact(command, nil)
}

func parseAssuanError(line []byte) error {
	rest := strings.TrimPrefix(string(line), "ERR ")
	codeText, desc, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return errUnexpected
	}
	return &gopinentry.AssuanError{Code: code, Description: desc}
}

// appendUnescaped percent-decodes Assuan data into dst.
func appendUnescaped(dst, data []byte) []byte {
	for i := 0; i < len(data); i++ {
		if data[i] == '%' && i+2 < len(data) {
			if hi, ok := unhex(data[i+1]); ok {
				if lo, ok := unhex(data[i+2]); ok {
					dst = append(dst, hi<<4|lo)
					i += 2
					continue
				}
			}
		}
		dst = append(dst, data[i])
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// escape percent-encodes what Assuan cannot carry in a command argument.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '\n', '\r':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
