// Package logging builds the agent's zap logger: JSON lines to a rotating
// file in the state directory (user-only, 0600) and a human console on
// stderr, both at the configured level.
//
// Secrets are kept out in two ways. First, callers build fields with the
// helpers of this package (Origin, Op, Reader, Serial, Code, Err, ...),
// none of which takes bytes. Second, every core is wrapped in a redacting
// core that replaces, whatever the caller did:
//   - any field whose key names a secret or document content (pin, puk,
//     password, secret, document, dataToSign, apdu, ... see redactedKeys),
//   - any binary or byte-string field (zap.Binary, zap.ByteString, and
//     zap.Any of a []byte),
//
// with a placeholder carrying only the length. APDU data, PINs and document
// bytes therefore never reach a log line, even through a careless zap.Any.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// FileName is the log file inside Options.Dir.
const FileName = "cpsagent.log"

// Options configures New.
type Options struct {
	// Level is debug, info, warn or error ("" = info).
	Level string
	// Dir receives FileName, rotated (created 0700; the file is 0600).
	// Empty: no file.
	Dir string
	// Console receives human-readable lines (nil: no console).
	Console io.Writer
	// Rotation; zero values take the defaults (10 MiB, 5 backups, 30 days).
	MaxSizeMB, MaxBackups, MaxAgeDays int
}

// Logger is the agent's logger plus what must be closed at exit.
type Logger struct {
	*zap.Logger
	// Path is the log file ("" when none).
	Path  string
	level zap.AtomicLevel
	file  *lumberjack.Logger
}

// ParseLevel maps a level name to a zap level.
func ParseLevel(s string) (zapcore.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return zapcore.InfoLevel, nil
	case "debug":
		return zapcore.DebugLevel, nil
	case "warn", "warning":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return zapcore.InfoLevel, fmt.Errorf("logging: unknown level %q", s)
}

// New builds the logger.
func New(opts Options) (*Logger, error) {
	lvl, err := ParseLevel(opts.Level)
	if err != nil {
		return nil, err
	}
	l := &Logger{level: zap.NewAtomicLevelAt(lvl)}
	var cores []zapcore.Core
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("logging: %w", err)
		}
		l.Path = filepath.Join(opts.Dir, FileName)
		// lumberjack creates new files 0600 but keeps the mode of an
		// existing one: tighten it in case an older version left it wider.
		if err := os.Chmod(l.Path, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("logging: %w", err)
		}
		l.file = &lumberjack.Logger{
			Filename:   l.Path,
			MaxSize:    orDefault(opts.MaxSizeMB, 10),
			MaxBackups: orDefault(opts.MaxBackups, 5),
			MaxAge:     orDefault(opts.MaxAgeDays, 30),
			LocalTime:  false,
		}
		enc := zap.NewProductionEncoderConfig()
		enc.TimeKey = "time"
		enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc.EncodeDuration = zapcore.MillisDurationEncoder
		cores = append(cores, zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(l.file), l.level))
	}
	if opts.Console != nil {
		enc := zap.NewDevelopmentEncoderConfig()
		enc.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly)
		enc.EncodeDuration = zapcore.StringDurationEncoder
		enc.CallerKey = ""
		enc.StacktraceKey = ""
		cores = append(cores, zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(opts.Console)), l.level))
	}
	core := zapcore.NewNopCore()
	if len(cores) > 0 {
		core = zapcore.NewTee(cores...)
	}
	l.Logger = zap.New(Redact(core), zap.ErrorOutput(zapcore.AddSync(io.Discard)))
	return l, nil
}

// SetLevel changes the level at run time.
func (l *Logger) SetLevel(lvl zapcore.Level) { l.level.SetLevel(lvl) }

// Close flushes and closes the log file.
func (l *Logger) Close() error {
	_ = l.Logger.Sync()
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}
