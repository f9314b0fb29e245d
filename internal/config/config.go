// Package config holds the agent's settings: the JSON config file, the
// command-line flags that mirror it (flags win over the file), and the
// per-OS default directories.
//
// The file is strict JSON (unknown fields, duplicate keys and trailing data
// are errors, so a typo never silently turns a setting off). Every key is
// optional:
//
//	{
//	  "listen":       ["127.0.0.1:47180", "[::1]:47180"],
//	  "virtualCard":  "",              // identity name; empty = real PC/SC readers
//	  "pinentry":     "",              // program; empty = the per-OS default
//	  "allowOrigins": ["https://portal.example"],
//	  "stateDir":     "",              // empty = the per-OS default
//	  "logLevel":     "info",          // debug | info | warn | error
//	  "pinTimeout":   "2m",            // how long the PIN prompt waits for the holder
//	  "rateLimit":    {"burst": 6, "perMinute": 20},
//	  "headless":     false            // true: no tray icon even with a display
//	}
//
// List-valued flags (--listen, --allow-origin) replace the file's list when
// given at least once; they are not merged.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is the agent's TCP port (127.0.0.1 and ::1).
const DefaultPort = 47180

// DefaultVirtualIdentity is the identity used by a bare --virtual-card.
const DefaultVirtualIdentity = "medecin"

// FileName is the config file name inside ConfigDir().
const FileName = "config.json"

// Limits on the config file itself.
const maxFileSize = 1 << 20

// Errors returned by Load. They wrap the detail with %w-compatible types so
// callers can tell a usage error (exit status 2) from an I/O problem.
var (
	ErrUsage   = errors.New("config: usage")
	ErrInvalid = errors.New("config: invalid setting")
)

// Config is the agent's effective configuration. Its JSON form is the
// config file format.
type Config struct {
	Listen       []string   `json:"listen,omitempty"`
	VirtualCard  string     `json:"virtualCard,omitempty"`
	Pinentry     string     `json:"pinentry,omitempty"`
	AllowOrigins []string   `json:"allowOrigins,omitempty"`
	StateDir     string     `json:"stateDir,omitempty"`
	LogLevel     string     `json:"logLevel,omitempty"`
	PINTimeout   Duration   `json:"pinTimeout,omitempty"`
	RateLimit    *RateLimit `json:"rateLimit,omitempty"`
	// Headless runs without the tray icon even when a display is
	// available (without a display the agent is headless anyway).
	Headless bool `json:"headless,omitempty"`

	// ConfigFile is the file that was read ("" when none); not part of the file.
	ConfigFile string `json:"-"`
}

// RateLimit bounds how many card operations (each one a PIN prompt) one
// origin may start: a token bucket of Burst tokens refilled at PerMinute.
// PerMinute 0 with Burst 0 disables the limit (tests and benchmarks only).
type RateLimit struct {
	Burst     int `json:"burst"`
	PerMinute int `json:"perMinute"`
}

// Duration is a time.Duration written as a Go duration string ("90s", "2m").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults returns the built-in settings.
func Defaults() *Config {
	return &Config{
		Listen:     []string{"127.0.0.1:" + strconv.Itoa(DefaultPort), "[::1]:" + strconv.Itoa(DefaultPort)},
		LogLevel:   "info",
		PINTimeout: Duration(2 * time.Minute),
		RateLimit:  &RateLimit{Burst: 6, PerMinute: 20},
	}
}

// Load builds the serve configuration: defaults, then the config file (the
// --config flag, or ConfigDir()/config.json when it exists), then the flags.
// It validates the result. Errors that come from the command line wrap
// ErrUsage; -h/--help returns flag.ErrHelp.
func Load(args []string, stderr io.Writer) (*Config, error) {
	set := NewFlagSet("serve", stderr)
	f := bindFlags(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if set.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, set.Arg(0))
	}

	cfg := Defaults()
	path, explicit := f.config, f.config != ""
	if !explicit {
		if dir, err := ConfigDir(); err == nil {
			path = filepath.Join(dir, FileName)
		}
	}
	if path != "" {
		fileCfg, err := ReadFile(path)
		switch {
		case err == nil:
			cfg.merge(fileCfg)
			cfg.ConfigFile = path
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// no config file: defaults
		default:
			return nil, err
		}
	}
	f.apply(set, cfg)
	if cfg.StateDir == "" {
		dir, err := StateDir()
		if err != nil {
			return nil, fmt.Errorf("%w: no state directory: %v (use --state-dir)", ErrInvalid, err)
		}
		cfg.StateDir = dir
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// NewFlagSet returns a flag set that reports errors instead of exiting.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	set := flag.NewFlagSet(name, flag.ContinueOnError)
	set.SetOutput(stderr)
	return set
}

// flags holds the serve flags; the zero value of each means "not given".
type flags struct {
	listen      stringList
	virtualCard optionalString
	pinentry    string
	allowOrigin stringList
	config      string
	stateDir    string
	logLevel    string
	pinTimeout  time.Duration
	headless    bool
}

func bindFlags(set *flag.FlagSet) *flags {
	f := &flags{virtualCard: optionalString{def: DefaultVirtualIdentity}}
	set.Var(&f.listen, "listen", "`ADDR:PORT` to listen on, loopback only (repeatable; default 127.0.0.1 and [::1] on the first port of 47180-47199 free on both)")
	set.Var(&f.virtualCard, "virtual-card", "use the in-process virtual card instead of PC/SC (`=IDENTITY`, default "+DefaultVirtualIdentity+")")
	set.StringVar(&f.pinentry, "pinentry", "", "pinentry `PROGRAM` that asks for the PIN (default: per-OS)")
	set.Var(&f.allowOrigin, "allow-origin", "allow web `ORIGIN` (scheme://host[:port]) to use the agent (repeatable)")
	set.StringVar(&f.config, "config", "", "config `FILE` (default: "+defaultConfigHint()+")")
	set.StringVar(&f.stateDir, "state-dir", "", "state `DIR`: TLS keys and logs (default: "+defaultStateHint()+")")
	set.StringVar(&f.logLevel, "log-level", "", "log `LEVEL`: debug, info, warn or error (default info)")
	set.DurationVar(&f.pinTimeout, "pin-timeout", 0, "how long the PIN prompt waits for the holder (default 2m)")
	set.BoolVar(&f.headless, "headless", false, "no tray icon, even when a display is available (default: tray when there is a display)")
	return f
}

// apply copies the flags that were given on the command line over cfg.
func (f *flags) apply(set *flag.FlagSet, cfg *Config) {
	set.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "listen":
			cfg.Listen = append([]string(nil), f.listen...)
		case "virtual-card":
			cfg.VirtualCard = f.virtualCard.value
		case "pinentry":
			cfg.Pinentry = f.pinentry
		case "allow-origin":
			cfg.AllowOrigins = append([]string(nil), f.allowOrigin...)
		case "state-dir":
			cfg.StateDir = f.stateDir
		case "log-level":
			cfg.LogLevel = f.logLevel
		case "pin-timeout":
			cfg.PINTimeout = Duration(f.pinTimeout)
		case "headless":
			cfg.Headless = f.headless
		}
	})
}

// merge copies the settings present in o over c.
func (c *Config) merge(o *Config) {
	if o.Listen != nil {
		c.Listen = o.Listen
	}
	if o.VirtualCard != "" {
		c.VirtualCard = o.VirtualCard
	}
	if o.Pinentry != "" {
		c.Pinentry = o.Pinentry
	}
	if o.AllowOrigins != nil {
		c.AllowOrigins = o.AllowOrigins
	}
	if o.StateDir != "" {
		c.StateDir = o.StateDir
	}
	if o.LogLevel != "" {
		c.LogLevel = o.LogLevel
	}
	if o.PINTimeout != 0 {
		c.PINTimeout = o.PINTimeout
	}
	if o.RateLimit != nil {
		c.RateLimit = o.RateLimit
	}
	if o.Headless {
		c.Headless = true
	}
}

// ReadFile reads and strictly decodes a config file. A missing file
// returns an error matching fs.ErrNotExist.
func ReadFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, maxFileSize)
	}
	cfg, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	return cfg, nil
}

// Decode strictly decodes a config file's content: unknown fields,
// duplicate keys and trailing data are errors.
func Decode(data []byte) (*Config, error) {
	if err := checkDuplicateKeys(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON object")
	}
	return &cfg, nil
}

// checkDuplicateKeys walks the JSON tokens and rejects an object that
// names a key twice (encoding/json would silently keep the last one).
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isKey := tok.(string); isKey && top != nil && top.obj && top.key {
			if top.keys[k] {
				return fmt.Errorf("duplicate key %q", k)
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
		if len(stack) > 64 {
			return errors.New("JSON nested too deeply")
		}
	}
}

// Validate checks every setting and normalises what it can.
func (c *Config) Validate() error {
	if len(c.Listen) == 0 {
		return fmt.Errorf("%w: no listen address", ErrInvalid)
	}
	seen := map[string]bool{}
	for i, a := range c.Listen {
		ap, err := ParseListen(a)
		if err != nil {
			return err
		}
		c.Listen[i] = ap.String()
		if seen[c.Listen[i]] {
			return fmt.Errorf("%w: listen address %s given twice", ErrInvalid, c.Listen[i])
		}
		seen[c.Listen[i]] = true
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return err
	}
	if c.VirtualCard != "" && !validIdentityName(c.VirtualCard) {
		return fmt.Errorf("%w: virtual card identity %q: letters, digits, '-' and '_' only", ErrInvalid, c.VirtualCard)
	}
	if c.PINTimeout < Duration(5*time.Second) || c.PINTimeout > Duration(10*time.Minute) {
		return fmt.Errorf("%w: pinTimeout %s outside [5s, 10m]", ErrInvalid, time.Duration(c.PINTimeout))
	}
	if r := c.RateLimit; r != nil && (r.Burst < 0 || r.PerMinute < 0 || (r.Burst == 0) != (r.PerMinute == 0)) {
		return fmt.Errorf("%w: rateLimit needs burst and perMinute both > 0 (or both 0 to disable)", ErrInvalid)
	}
	for _, o := range c.AllowOrigins {
		if strings.TrimSpace(o) == "" {
			return fmt.Errorf("%w: empty allowed origin", ErrInvalid)
		}
	}
	if c.StateDir != "" && !filepath.IsAbs(c.StateDir) {
		abs, err := filepath.Abs(c.StateDir)
		if err != nil {
			return fmt.Errorf("%w: state dir: %v", ErrInvalid, err)
		}
		c.StateDir = abs
	}
	return nil
}

// ParseListen parses a listen address and refuses anything that is not a
// loopback IP literal (127.0.0.0/8 or ::1) with an explicit port. Host names
// (even "localhost") are refused: they would need a resolver and could
// resolve elsewhere. Port 0 (any free port) is accepted for tests.
func ParseListen(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: listen address %q: %v", ErrInvalid, s, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%w: listen address %q: the host must be 127.0.0.1 or ::1 (an IP literal)", ErrInvalid, s)
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("%w: listen address %q is not a loopback address; the agent only listens on 127.0.0.1 and ::1", ErrInvalid, s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: listen address %q: bad port", ErrInvalid, s)
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

func validIdentityName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// LogLevels lists the accepted log levels.
var LogLevels = []string{"debug", "info", "warn", "error"}

// ParseLogLevel checks a log level name; it returns the lower-case form.
func ParseLogLevel(s string) (string, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, v := range LogLevels {
		if l == v {
			return l, nil
		}
	}
	return "", fmt.Errorf("%w: log level %q (want one of %s)", ErrInvalid, s, strings.Join(LogLevels, ", "))
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// optionalString is a flag usable bare (--virtual-card) or with a value
// (--virtual-card=pharmacien). Bare means def; "false" turns it off.
type optionalString struct {
	def   string
	value string
}

func (o *optionalString) String() string   { return o.value }
func (o *optionalString) IsBoolFlag() bool { return true }
func (o *optionalString) Set(v string) error {
	switch v {
	case "true":
		o.value = o.def
	case "false", "":
		o.value = ""
	default:
		o.value = v
	}
	return nil
}

func defaultConfigHint() string {
	if d, err := ConfigDir(); err == nil {
		return filepath.Join(d, FileName)
	}
	return "none"
}

func defaultStateHint() string {
	if d, err := StateDir(); err == nil {
		return d
	}
	return "none"
}
