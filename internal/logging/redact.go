package logging

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// redactedKeys are field keys (compared lower-case, without '-', '_' and
// '.') whose value is never logged. Keys ending in "pin" or "puk" are
// redacted too (newPin, userPIN), except "pinentry" which names a program.
var redactedKeys = map[string]bool{
	"pin": true, "puk": true, "code": false, // "code" is the problem code: kept
	"password": true, "passwd": true, "secret": true, "passphrase": true,
	"document": true, "documentdigest": true, "digest": true, "hash": true,
	"datatosign": true, "tobesigned": true, "data": true, "body": true,
	"payload": true, "apdu": true, "capdu": true, "rapdu": true, "command": true,
	"response": true, "verify": true, "verifydata": true, "signedattributes": true,
	"nir": true, "ins": true, "challengenonce": true, "nonce": true,
}

// Redacted is the placeholder written instead of a secret value.
const Redacted = "[redacted]"

func redactedKey(key string) bool {
	k := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(key))
	if redactedKeys[k] {
		return true
	}
	return (strings.HasSuffix(k, "pin") || strings.HasSuffix(k, "puk")) && k != "pinentry"
}

// redactField returns f, or a placeholder when f could carry a secret.
func redactField(f zapcore.Field) zapcore.Field {
	switch f.Type {
	case zapcore.BinaryType, zapcore.ByteStringType:
		n := 0
		if b, ok := f.Interface.([]byte); ok {
			n = len(b)
		}
		return zap.String(f.Key, fmt.Sprintf("%s %d bytes", Redacted, n))
	case zapcore.ReflectType:
		// zap.Any of a struct, map or slice: reflection-encoded values can
		// hide []byte members (base64 in JSON). Never logged.
		return zap.String(f.Key, Redacted+" value")
	case zapcore.SkipType, zapcore.NamespaceType:
		return f
	}
	if redactedKey(f.Key) {
		return zap.String(f.Key, Redacted)
	}
	return f
}

func redactFields(fs []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, len(fs))
	for i, f := range fs {
		out[i] = redactField(f)
	}
	return out
}

// Redact wraps a core so that every field goes through the redaction rules
// above before it is encoded.
func Redact(c zapcore.Core) zapcore.Core { return redactCore{c} }

type redactCore struct{ inner zapcore.Core }

func (c redactCore) Enabled(l zapcore.Level) bool { return c.inner.Enabled(l) }
func (c redactCore) Sync() error                  { return c.inner.Sync() }

func (c redactCore) With(fs []zapcore.Field) zapcore.Core {
	return redactCore{c.inner.With(redactFields(fs))}
}

func (c redactCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.inner.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c redactCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	return c.inner.Write(e, redactFields(fs))
}
