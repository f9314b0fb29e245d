package pinentry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestSecretRedaction(t *testing.T) {
	s := SecretFromBytes([]byte("4821"))
	type holder struct {
		PIN  *Secret
		Val  Secret
		Name string
	}
	h := holder{PIN: s, Val: *s, Name: "n"}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T"} {
		outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, *s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outputs = append(outputs, fmt.Sprint(s), fmt.Sprintln(*s), s.String(), s.GoString(), fmt.Sprint([]*Secret{s}), fmt.Sprint(map[string]Secret{"k": *s}))
	for _, v := range []any{s, *s, h, &h, []any{s}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	text, _ := s.MarshalText()
	outputs = append(outputs, string(text))

	var slogBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&slogBuf, nil)).Info("x", "pin", s, "val", *s, "h", h)
	var textBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&textBuf, nil)).Info("x", "pin", s, "val", *s)
	var zapBuf bytes.Buffer
	zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&zapBuf), zap.DebugLevel))
	zl.Info("x", zap.Any("pin", s), zap.Any("val", *s), zap.Any("h", h), zap.Stringer("s", s), zap.Reflect("r", h))
	outputs = append(outputs, slogBuf.String(), textBuf.String(), zapBuf.String())

	for _, o := range outputs {
		if strings.Contains(o, "4821") || strings.Contains(o, "34383231") || strings.Contains(o, "NDgyMQ") {
			t.Errorf("secret leaked: %s", o)
		}
	}
	for _, o := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%#v", *s), s.String()} {
		if o != "[redacted]" {
			t.Errorf("got %q, want [redacted]", o)
		}
	}
	if b, _ := json.Marshal(s); string(b) != `"[redacted]"` {
		t.Errorf("json = %s", b)
	}
	if string(s.Bytes()) != "4821" {
		t.Fatal("Bytes lost the secret")
	}
}

func TestSecretWipe(t *testing.T) {
	src := []byte("1234")
	s := SecretFromBytes(src)
	src[0] = '9'
	if string(s.Bytes()) != "1234" {
		t.Fatal("SecretFromBytes does not copy")
	}
	b := s.Bytes()
	s.Wipe()
	if !bytes.Equal(b, make([]byte, 4)) {
		t.Fatalf("Wipe did not zero the bytes: %q", b)
	}
	if s.Bytes() != nil || s.Len() != 0 {
		t.Fatal("Wipe kept a slice")
	}
	s.Wipe()
	var nilSecret *Secret
	nilSecret.Wipe()
	if nilSecret.Bytes() != nil || nilSecret.Len() != 0 {
		t.Fatal("nil Secret")
	}
}

func TestSecretEqual(t *testing.T) {
	a, b, c := SecretFromBytes([]byte("1234")), SecretFromBytes([]byte("1234")), SecretFromBytes([]byte("1235"))
	if !a.Equal(b) || a.Equal(c) || a.Equal(SecretFromBytes([]byte("123"))) {
		t.Fatal("Equal")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		in  string
		pin bool // valid PIN
		puk bool // valid PUK
	}{
		{"1234", true, false},
		{"0000", true, false},
		{"9999", true, false},
		{"12345678", false, true},
		{"00000000", false, true},
		{"", false, false},
		{"123", false, false},
		{"12345", false, false},
		{"12a4", false, false},
		{"12 4", false, false},
		{"١٢٣٤", false, false}, // Arabic-Indic digits are not ASCII digits
		{"１２３４", false, false}, // full-width digits
		{"1234\n", false, false},
		{"-123", false, false},
		{"1234567a", false, false},
		{"123456789", false, false},
		{"\x00\x00\x00\x00", false, false},
	}
	for _, tt := range tests {
		errPIN := ValidatePIN([]byte(tt.in))
		if (errPIN == nil) != tt.pin || (errPIN != nil && !errors.Is(errPIN, ErrPINFormat)) {
			t.Errorf("ValidatePIN(%q) = %v", tt.in, errPIN)
		}
		errPUK := ValidatePUK([]byte(tt.in))
		if (errPUK == nil) != tt.puk || (errPUK != nil && !errors.Is(errPUK, ErrPUKFormat)) {
			t.Errorf("ValidatePUK(%q) = %v", tt.in, errPUK)
		}
		for _, err := range []error{errPIN, errPUK} {
			if err != nil && len(tt.in) >= 3 && strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q contains the input", err)
			}
		}
		if got := PUK.Validate([]byte(tt.in)); (got == nil) != tt.puk {
			t.Errorf("PUK.Validate(%q) = %v", tt.in, got)
		}
		for _, k := range []Kind{PIN, NewPIN, ConfirmNewPIN} {
			if got := k.Validate([]byte(tt.in)); (got == nil) != tt.pin {
				t.Errorf("%v.Validate(%q) = %v", k, tt.in, got)
			}
		}
	}
}

func TestAssuanCoding(t *testing.T) {
	if got := string(appendUnescaped(nil, []byte("a%25b%0A%0d%zz%4"))); got != "a%b\n\r%zz%4" {
		t.Errorf("unescape = %q", got)
	}
	if got := escape("50% off\r\nnext"); got != "50%25 off%0D%0Anext" {
		t.Errorf("escape = %q", got)
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", maxLine)
	lr := lineReader{r: strings.NewReader("OK hi\r\nD 12\n" + long)}
	for _, want := range []string{"OK hi", "D 12"} {
		line, err := lr.readLine()
		if err != nil || string(line) != want {
			t.Fatalf("readLine = %q, %v; want %q", line, err, want)
		}
	}
	if _, err := lr.readLine(); !errors.Is(err, errLineTooLong) {
		t.Fatalf("err = %v, want errLineTooLong", err)
	}
	lr.wipe()
	if !bytes.Equal(lr.buf[:], make([]byte, maxLine)) {
		t.Fatal("wipe left data")
	}
}

func TestKindAndDecisionStrings(t *testing.T) {
	for v, want := range map[fmt.Stringer]string{PIN: "PIN", PUK: "PUK", NewPIN: "NewPIN", ConfirmNewPIN: "ConfirmNewPIN", Kind(9): "Kind(?)",
		Refuse: "Refuse", AllowOnce: "AllowOnce", AllowAlways: "AllowAlways", Decision(7): "Decision(?)"} {
		if v.String() != want {
			t.Errorf("String() = %q, want %q", v.String(), want)
		}
	}
	var d Decision
	if d != Refuse {
		t.Fatal("the zero Decision must be Refuse")
	}
}
