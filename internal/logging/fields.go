package logging

import (
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"
)

// Field helpers. They take only strings, numbers, durations and errors,
// never bytes, and bound what they copy: use them instead of zap.Any.

const maxFieldLen = 256

// clean bounds a caller-controlled string and replaces control and
// formatting characters (newlines, bidi overrides) so that a log line
// cannot be forged or reordered by request data.
func clean(s string) string {
	if len(s) > maxFieldLen {
		s = s[:maxFieldLen] + "…"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
}

// Origin is the (validated or refused) Origin header of a request.
func Origin(o string) zap.Field { return zap.String("origin", clean(o)) }

// Host is the Host header of a request.
func Host(h string) zap.Field { return zap.String("host", clean(h)) }

// Op names an operation: "authenticate", "sign-raw", "sign-cades", ...
func Op(name string) zap.Field { return zap.String("op", clean(name)) }

// Method is the HTTP method.
func Method(m string) zap.Field { return zap.String("method", clean(m)) }

// Path is a URL path (never the query string: callers pass r.URL.Path).
func Path(p string) zap.Field { return zap.String("path", clean(p)) }

// Status is an HTTP status code.
func Status(code int) zap.Field { return zap.Int("status", code) }

// Code is a stable problem code (agent_busy, pin_incorrect, ...).
func Code(c string) zap.Field { return zap.String("code", clean(c)) }

// Reader is a PC/SC reader name.
func Reader(name string) zap.Field { return zap.String("reader", clean(name)) }

// Serial is a card serial number, masked but for its last 4 characters:
// enough to tell two cards apart in a log, not to copy a card number.
func Serial(s string) zap.Field {
	s = clean(s)
	if n := len(s); n > 4 {
		s = strings.Repeat("*", n-4) + s[n-4:]
	}
	return zap.String("serial", s)
}

// Event is a card event type.
func Event(t string) zap.Field { return zap.String("event", clean(t)) }

// TriesLeft is a PIN retry counter.
func TriesLeft(n int) zap.Field { return zap.Int("triesLeft", n) }

// Elapsed is the duration of an operation.
func Elapsed(d time.Duration) zap.Field { return zap.Duration("elapsed", d) }

// CardTime is the time spent inside the card transport.
func CardTime(d time.Duration) zap.Field { return zap.Duration("cardTime", d) }

// Addr is a listen or peer address.
func Addr(a string) zap.Field { return zap.String("addr", clean(a)) }

// Size is a byte count (a body length, never the body).
func Size(n int) zap.Field { return zap.Int("size", n) }

// Err is an error. Errors of the card and pinentry layers never carry a PIN
// or card data; their text is bounded all the same.
func Err(err error) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String("error", clean(err.Error()))
}

// Name is a short free-form label (a component, a subcommand).
func Name(key, v string) zap.Field { return zap.String(key, clean(v)) }
