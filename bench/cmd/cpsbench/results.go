package main

import (
	"math"
	"sort"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// Tools compared.
const (
	toolAgent  = "cpsagent"        // the agent binary, through its HTTPS API
	toolEngine = "cpsagent engine" // the card engine in-process (no HTTP, no PIN dialog)
	toolOpenSC = "OpenSC"          // pkcs11-tool / pkcs15-tool, one process per operation
)

// Operations measured (the keys of Results.Ops).
const (
	opSign        = "sign"
	opAuth        = "authenticate"
	opColdID      = "cold-identity"
	opColdSign    = "cold-read-sign"
	opColdAuth    = "cold-read-auth"
	opWarmID      = "warm-identity"
	opStatus      = "status"
	opReadOneCert = "read-one-certificate"
)

// opTitles are the table row names.
var opTitles = map[string]string{
	opSign:        "Signature (SHA-256 RSA PKCS#1, key 0x81)",
	opAuth:        "Authentication (RSA PKCS#1 over a DigestInfo, key 0x82)",
	opColdID:      "Cold identity read (both certificates)",
	opColdSign:    "Cold \"read certificate + sign\"",
	opColdAuth:    "Cold \"read certificate + authenticate\"",
	opWarmID:      "Identity read, card already known (GET /v1/card)",
	opStatus:      "GET /v1/status",
	opReadOneCert: "Cold read of one certificate",
}

// Sample is one run of an operation.
type Sample struct {
	OK       bool          `json:"ok"`
	Err      string        `json:"err,omitempty"`
	Wall     time.Duration `json:"wall"`               // as the caller saw it
	APDUs    int64         `json:"apdus"`              // counted by the virtual card (GET RESPONSE included)
	Bytes    int64         `json:"bytes"`              // command + response bytes through the card's I/O
	Modelled time.Duration `json:"modelled"`           // the card's modelled latency (virtual.Stats.Latency)
	RSAOps   int64         `json:"rsaOps"`             // private-key operations on the card
	Verifies int64         `json:"verifies"`           // VERIFY with data (PIN presentations)
	FromPIN  int64         `json:"fromPin,omitempty"`  // APDUs from the first PIN VERIFY on (OpenSC: what a warm session would still send)
	IDWall   time.Duration `json:"idWall,omitempty"`   // cold sequences: card-inserted event → identity answered
	Engine   *EngineSide   `json:"engine,omitempty"`   // what the agent or engine reported
	Projects *Projection   `json:"projects,omitempty"` // OpenSC sign: what completing it would add
}

// EngineSide is the agent's own account of an operation (log file or
// card.Signature).
type EngineSide struct {
	APDUs    int           `json:"apdus"`
	CardTime time.Duration `json:"cardTime"` // time inside the card transport (PC/SC + vpcd + card)
	Prompt   time.Duration `json:"prompt"`   // PIN dialog (pinentry) duration
	Took     time.Duration `json:"took"`     // the engine's whole operation
}

// Overhead is the agent's own time: what the caller waited minus the time
// inside the card transport and the PIN dialog.
func (s Sample) Overhead() (time.Duration, bool) {
	if s.Engine == nil || !s.OK {
		return 0, false
	}
	return s.Wall - s.Engine.CardTime - s.Engine.Prompt, true
}

// Projection is what an OpenSC signature that stopped before PSO HASH
// would have cost to complete (PSO HASH, PSO CDS, GET RESPONSE), by the
// same latency model.
type Projection struct {
	APDUs    int64         `json:"apdus"`
	Bytes    int64         `json:"bytes"`
	Modelled time.Duration `json:"modelled"`
}

// OpResult is every run of one operation by one tool.
type OpResult struct {
	Op      string   `json:"op"`
	Tool    string   `json:"tool"`
	How     string   `json:"how"` // the command or request
	Note    string   `json:"note,omitempty"`
	Samples []Sample `json:"samples"`
}

// Resources are the agent's process measurements.
type Resources struct {
	IdleWindow      time.Duration `json:"idleWindow"`
	IdleCPU         time.Duration `json:"idleCpu"`
	IdleCPUPercent  float64       `json:"idleCpuPercent"`
	IdleWakeups     int64         `json:"idleWakeups"` // context switches of all threads over the window
	IdleThreads     int           `json:"idleThreads"`
	IdleRSSKiB      int64         `json:"idleRssKiB"`
	LoadRSSKiB      int64         `json:"loadRssKiB"` // VmRSS right after the load
	LoadHWMKiB      int64         `json:"loadHwmKiB"` // VmHWM (peak) at the end
	LoadRequests    int           `json:"loadRequests"`
	LoadConcurrency int           `json:"loadConcurrency"`
	BinaryBytes     int64         `json:"binaryBytes"`
	NotrayBytes     int64         `json:"notrayBytes,omitempty"`
	// Start-up: process start to the first 200 of GET /v1/status.
	Startup      []time.Duration `json:"startup"`      // state directory present (normal start)
	FirstStartup []time.Duration `json:"firstStartup"` // empty state directory: the local CA is created
}

// Env describes where the numbers come from.
type Env struct {
	Date      string          `json:"date"`
	Mode      string          `json:"mode"` // quick or full
	CPU       string          `json:"cpu"`
	Cores     int             `json:"cores"`
	LoadAvg   string          `json:"loadAvg"` // at the start
	LoadAvgAt string          `json:"loadAvgEnd"`
	Kernel    string          `json:"kernel"`
	GoVersion string          `json:"goVersion"`
	Agent     string          `json:"agentVersion"`
	OpenSC    string          `json:"openscVersion"`
	PCSCLite  string          `json:"pcscLite"`
	Latency   string          `json:"latencyPreset"`
	Model     virtual.Latency `json:"latencyModel"`
	DataSize  int             `json:"dataSize"` // bytes signed
}

// Limit is the physical floor of one operation: the card's RSA time and
// the T=0 transfer time of the bytes of the minimal exchange.
type Limit struct {
	Op        string        `json:"op"`
	Exchange  []string      `json:"exchange"` // the minimal APDUs
	Bytes     int64         `json:"bytes"`    // characters on the wire, procedure bytes included
	Transfer  time.Duration `json:"transfer"`
	RSA       time.Duration `json:"rsa"`
	Total     time.Duration `json:"total"`
	PerAPDU   time.Duration `json:"perApdu"`   // the model's per-exchange cost (not part of the floor)
	ModelMin  time.Duration `json:"modelMin"`  // the minimal exchange priced by the whole latency model
	AgentP50  time.Duration `json:"agentP50"`  // cpsagent wall time (HTTP), median
	AgentCard time.Duration `json:"agentCard"` // cpsagent modelled card time, median
}

// Results is the whole run (results.json).
type Results struct {
	Env       Env        `json:"env"`
	Ops       []OpResult `json:"ops"`
	Resources Resources  `json:"resources"`
	Limits    []Limit    `json:"limits"`
	Findings  []string   `json:"findings,omitempty"` // anomalies seen during the run
}

// find returns the result of op by tool, or nil.
func (r *Results) find(op, tool string) *OpResult {
	for i := range r.Ops {
		if r.Ops[i].Op == op && r.Ops[i].Tool == tool {
			return &r.Ops[i]
		}
	}
	return nil
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// the values; 0 for none. With fewer than 100 values p99 is the maximum.
func Percentile(vals []time.Duration, p float64) time.Duration {
	if len(vals) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), vals...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// MedianInt is the nearest-rank median of integer values.
func MedianInt(vals []int64) int64 {
	if len(vals) == 0 {
		return 0
	}
	s := append([]int64(nil), vals...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)/2]
}

func (o *OpResult) walls(okOnly bool) []time.Duration {
	var out []time.Duration
	for _, s := range o.Samples {
		if s.OK || !okOnly {
			out = append(out, s.Wall)
		}
	}
	return out
}

func (o *OpResult) ints(f func(Sample) int64) []int64 {
	out := make([]int64, 0, len(o.Samples))
	for _, s := range o.Samples {
		out = append(out, f(s))
	}
	return out
}

func (o *OpResult) durs(f func(Sample) (time.Duration, bool)) []time.Duration {
	var out []time.Duration
	for _, s := range o.Samples {
		if d, ok := f(s); ok {
			out = append(out, d)
		}
	}
	return out
}

func (o *OpResult) okCount() int {
	n := 0
	for _, s := range o.Samples {
		if s.OK {
			n++
		}
	}
	return n
}

// allFailed: every sample failed (OpenSC's signature on this build).
func (o *OpResult) allFailed() bool { return len(o.Samples) > 0 && o.okCount() == 0 }

// medianAPDUs is the median APDU count, plus the projection for failed
// OpenSC signatures (0 when there is none).
func (o *OpResult) medianAPDUs() (measured, projected int64) {
	measured = MedianInt(o.ints(func(s Sample) int64 { return s.APDUs }))
	if o.allFailed() && o.Samples[0].Projects != nil {
		projected = measured + o.Samples[0].Projects.APDUs
	}
	return measured, projected
}

// wallPercentiles of successful runs, or of the attempts when all failed.
func (o *OpResult) wallPercentiles() (p50, p90, p99 time.Duration) {
	w := o.walls(true)
	if len(w) == 0 {
		w = o.walls(false)
		if len(o.Samples) > 0 && o.Samples[0].Projects != nil {
			add := o.Samples[0].Projects.Modelled
			for i := range w {
				w[i] += add
			}
		}
	}
	return Percentile(w, 50), Percentile(w, 90), Percentile(w, 99)
}

// harnessStats adapts a stats delta into a sample.
func statsSample(d virtual.Stats) Sample {
	return Sample{APDUs: d.APDUs, Bytes: d.BytesIn + d.BytesOut, Modelled: d.Latency, RSAOps: d.CryptoOps(), Verifies: d.Verifies}
}

// fromFirstVerify counts the APDUs from the first VERIFY with data on.
func fromFirstVerify(recs []harness.APDURecord) int64 {
	for i, r := range recs {
		if r.IsVerifyWithData() {
			return int64(len(recs) - i)
		}
	}
	return 0
}
