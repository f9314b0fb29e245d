package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		vals []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 50, 3 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 90, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 100, 10 * time.Millisecond},
		{ms(3, 1), 1, time.Millisecond},
	} {
		if got := Percentile(tc.vals, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.vals, tc.p, got, tc.want)
		}
	}
	in := ms(3, 1, 2)
	Percentile(in, 50)
	if in[0] != 3*time.Millisecond {
		t.Error("Percentile sorted its input")
	}
	if got := MedianInt([]int64{9, 1, 5, 7}); got != 5 {
		t.Errorf("MedianInt = %d", got)
	}
}

func TestHashLc(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{1, 5}, {20, 24}, {64, 68}, // "90 00" + "80 n tail"
		{65, 2 + 40 + 2 + 1}, {128, 2 + 40 + 2 + 64}, {1000, 2 + 40 + 2 + 40},
	} {
		if got := hashLc(tc.n); got != tc.want {
			t.Errorf("hashLc(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// TestLimitCPS3 pins the physical floor quoted in docs/performance.md.
func TestLimitCPS3(t *testing.T) {
	lat, err := virtual.LatencyPreset("cps3")
	if err != nil {
		t.Fatal(err)
	}
	sign := computeLimit(opSign, minimalSign(1000), lat)
	// VERIFY 12, HT 11, DST 14, HASH 5+1+84+2 = 92, CDS 7, GET RESPONSE 264.
	if sign.Bytes != 400 || sign.Transfer != 500*time.Millisecond || sign.Total != 800*time.Millisecond {
		t.Errorf("sign limit %+v", sign)
	}
	// Model: 6 × 20 ms + (9+2 + 8+2 + 11+2 + 89+2 + 5+2 + 5+258) × 1.25 ms + 300 ms.
	if want := 120*time.Millisecond + 395*1250*time.Microsecond + 300*time.Millisecond; sign.ModelMin != want {
		t.Errorf("sign model price %v, want %v", sign.ModelMin, want)
	}
	auth := computeLimit(opAuth, minimalAuth(), lat)
	// VERIFY 12, MSE AT 14, INTERNAL AUTHENTICATE 5+1+51+2 = 59, GET RESPONSE 264.
	if auth.Bytes != 349 || auth.Total != 300*time.Millisecond+349*1250*time.Microsecond {
		t.Errorf("auth limit %+v", auth)
	}
	p := projectSignCompletion(1000, lat)
	if p.APDUs != 3 || p.Bytes != 91+7+263 || p.Modelled != 60*time.Millisecond+361*1250*time.Microsecond+300*time.Millisecond {
		t.Errorf("projection %+v", p)
	}
}

func TestCertIDs(t *testing.T) {
	out := `X.509 Certificate [Certificat d'Authentification CPS]
	Object Flags   : [0x00]
	Authority      : no
	Path           : e828bd080f8025000001ff0010::3f000001a001
	ID             : e828bd080f8025000001ff001002
	Encoded serial : 02 10 6D2B

X.509 Certificate [Certificat de Signature CPS]
	Object Flags   : [0x00]
	Path           : e828bd080f8025000001ff0010::3f000001a002
	ID             : e828bd080f8025000001ff001001
`
	s, a, err := certIDs(out)
	if err != nil || s != "e828bd080f8025000001ff001001" || a != "e828bd080f8025000001ff001002" {
		t.Fatalf("%q %q %v", s, a, err)
	}
	if _, _, err := certIDs("no certificate"); err == nil {
		t.Fatal("no error without certificates")
	}
}

func TestFromFirstVerify(t *testing.T) {
	recs := []harness.APDURecord{{INS: 0xA4, HasData: true}, {INS: 0x20}, {INS: 0x20, HasData: true}, {INS: 0x2A}, {INS: 0xC0}}
	if got := fromFirstVerify(recs); got != 3 {
		t.Fatalf("fromFirstVerify = %d", got)
	}
	if got := fromFirstVerify(recs[:2]); got != 0 {
		t.Fatalf("no VERIFY with data: %d", got)
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 500 * time.Microsecond: "500 µs", 2500 * time.Microsecond: "2.50 ms", 123 * time.Millisecond: "123 ms",
		1500 * time.Millisecond: "1.50 s", -3 * time.Millisecond: "−3.00 ms",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

// fakeResults is a small run with every kind of row.
func fakeResults() *Results {
	lat, _ := virtual.LatencyPreset("cps3")
	s := func(wall time.Duration, apdus int64, ok bool) Sample {
		return Sample{OK: ok, Wall: wall, APDUs: apdus, Bytes: 400, Modelled: wall - 5*time.Millisecond,
			Engine: &EngineSide{APDUs: int(apdus), CardTime: wall - 3*time.Millisecond, Prompt: 2 * time.Millisecond}}
	}
	r := &Results{Env: Env{Mode: "quick", Latency: "cps3", Model: lat, DataSize: 1000}}
	r.Ops = []OpResult{
		{Op: opSign, Tool: toolAgent, How: "POST /v1/sign", Samples: []Sample{s(time.Second, 8, true), s(1100*time.Millisecond, 8, true)}},
		{Op: opAuth, Tool: toolAgent, Samples: []Sample{s(900*time.Millisecond, 6, true)}},
		{Op: opSign, Tool: toolOpenSC, Note: "fails", Samples: []Sample{{Wall: 9 * time.Second, APDUs: 110, Err: "CKR_FUNCTION_NOT_SUPPORTED",
			Projects: projectSignCompletion(1000, lat)}}},
		{Op: opColdSign, Tool: toolAgent, Samples: []Sample{s(4*time.Second, 24, true)}},
		{Op: opColdSign, Tool: toolOpenSC, Samples: []Sample{{Wall: 9 * time.Second, APDUs: 110, Err: "x", Projects: projectSignCompletion(1000, lat)}}},
		{Op: opAuth, Tool: toolOpenSC, Samples: []Sample{s(9*time.Second, 102, true)}},
	}
	r.Resources = Resources{IdleWindow: time.Minute, IdleCPU: 10 * time.Millisecond, IdleCPUPercent: 0.0167, IdleRSSKiB: 24000,
		Startup: []time.Duration{80 * time.Millisecond}}
	r.Limits = []Limit{computeLimit(opSign, minimalSign(1000), lat)}
	r.Findings = []string{"something odd"}
	return r
}

func TestRenderMarkdown(t *testing.T) {
	md := renderMarkdown(fakeResults())
	for _, want := range []string{
		"| Signature (SHA-256 RSA PKCS#1, key 0x81) | cpsagent | 2 / 2 | 8 |",
		"110 attempted, ≥ 113 projected",
		"| Cold \"read certificate + sign\" | 24 | ≥ 113 | ≥ 4.7x |",
		"≥ 3x fewer APDUs: **met**",
		"< 0.1 %: **met**",
		"< 40 MiB: **met**",
		"- something odd",
		"| 400 | 500 ms | 300 ms | 800 ms |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Overhead: wall − card time − prompt = 1 ms; modelled ≈ 1 s → 0.10 %.
	if !strings.Contains(md, "| 1.00 ms | 1.00 ms | 1.00 ms | 0.10 % | **met** |") {
		t.Errorf("overhead row wrong:\n%s", md)
	}
}

func TestPlotLatency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latency.png")
	if err := plotLatency(fakeResults(), path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 500 || img.Bounds().Dy() < 250 {
		t.Fatalf("plot of %v", img.Bounds())
	}
}

// TestMissedTargets: --check fails exactly on the report's MISSED rows.
func TestMissedTargets(t *testing.T) {
	r := fakeResults()
	if m := missedTargets(renderMarkdown(r)); len(m) != 0 {
		t.Fatalf("fake results miss %q", m)
	}
	r.Resources.IdleRSSKiB = 64 * 1024
	m := missedTargets(renderMarkdown(r))
	if len(m) != 1 || !strings.Contains(m[0], "Resident memory idle") {
		t.Fatalf("missed = %q, want the idle RSS row", m)
	}
}
