package main

import (
	"fmt"
	"strings"
	"time"
)

// fmtDur prints a duration for the tables.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 0:
		return "−" + fmtDur(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtMiB(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func fmtRatio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1fx", b/a)
}

func pass(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**MISSED**"
}

// mainOps are the operations of the side-by-side table, in order.
var mainOps = []string{opSign, opAuth, opColdID, opColdSign, opColdAuth, opReadOneCert, opWarmID, opStatus}

func renderMarkdown(r *Results) string {
	var b strings.Builder
	e := r.Env
	fmt.Fprintf(&b, "# cpsagent vs OpenSC — benchmark results (%s run)\n\n", e.Mode)
	fmt.Fprintf(&b, "One virtual CPS3 card (`internal/card/virtual`, T=0, RSA-2048) in one pcscd reader (vpcd slot 0), "+
		"latency model `%s`: %s per APDU + %s per byte + %s per RSA operation. "+
		"APDUs are counted by the card itself (GET RESPONSE included). Signed data: %d bytes. "+
		"Wall times are what the caller waits; percentiles are nearest-rank (p99 is the maximum below 100 runs).\n\n",
		e.Latency, fmtDur(e.Model.PerAPDU), fmtDur(e.Model.PerByte), fmtDur(e.Model.RSA), e.DataSize)

	b.WriteString("## Side by side\n\n")
	b.WriteString("| Operation | Tool | OK / runs | APDUs | card I/O bytes | modelled card time | wall p50 | p90 | p99 |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, op := range mainOps {
		for _, tool := range []string{toolAgent, toolEngine, toolOpenSC} {
			o := r.find(op, tool)
			if o == nil || len(o.Samples) == 0 {
				continue
			}
			apdus, proj := o.medianAPDUs()
			ap := fmt.Sprint(apdus)
			bytesMed := MedianInt(o.ints(func(s Sample) int64 { return s.Bytes }))
			by := fmt.Sprint(bytesMed)
			mod := Percentile(o.durs(func(s Sample) (time.Duration, bool) { return s.Modelled, true }), 50)
			md := fmtDur(mod)
			p50, p90, p99 := o.wallPercentiles()
			w50, w90, w99 := fmtDur(p50), fmtDur(p90), fmtDur(p99)
			if proj > 0 {
				pr := o.Samples[0].Projects
				ap = fmt.Sprintf("%d attempted, ≥ %d projected", apdus, proj)
				by = fmt.Sprintf("%d + %d", bytesMed, pr.Bytes)
				md = fmt.Sprintf("%s + %s", fmtDur(mod), fmtDur(pr.Modelled))
				w50, w90, w99 = "≥ "+w50, "≥ "+w90, "≥ "+w99
			}
			fmt.Fprintf(&b, "| %s | %s | %d / %d | %s | %s | %s | %s | %s | %s |\n",
				opTitles[op], tool, o.okCount(), len(o.Samples), ap, by, md, w50, w90, w99)
		}
	}
	b.WriteString("\nHow each row was produced:\n\n")
	for _, op := range mainOps {
		for _, tool := range []string{toolAgent, toolEngine, toolOpenSC} {
			if o := r.find(op, tool); o != nil && len(o.Samples) > 0 {
				fmt.Fprintf(&b, "- %s, %s: `%s`", opTitles[op], tool, o.How)
				if o.Note != "" {
					fmt.Fprintf(&b, " — %s", o.Note)
				}
				b.WriteString("\n")
			}
		}
	}

	b.WriteString("\n## Ratios (cpsagent through its HTTPS API vs OpenSC)\n\n")
	b.WriteString("| Sequence | cpsagent APDUs | OpenSC APDUs | fewer APDUs | cpsagent wall p50 | OpenSC wall p50 | faster | target |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, op := range []string{opColdSign, opColdAuth, opColdID, opSign, opAuth} {
		a, o := r.find(op, toolAgent), r.find(op, toolOpenSC)
		if a == nil || o == nil {
			continue
		}
		aa, _ := a.medianAPDUs()
		oa, op50 := o.medianAPDUs()
		if op50 == 0 {
			op50 = oa
		}
		ap50, _, _ := a.wallPercentiles()
		ow50, _, _ := o.wallPercentiles()
		target := ""
		if op == opColdSign {
			target = "≥ 3x fewer APDUs: " + pass(aa > 0 && float64(op50)/float64(aa) >= 3)
		}
		pre := ""
		if o.allFailed() {
			pre = "≥ "
		}
		fmt.Fprintf(&b, "| %s | %d | %s%d | %s%s | %s | %s%s | %s%s | %s |\n", opTitles[op], aa, pre, op50, pre,
			fmtRatio(float64(aa), float64(op50)), fmtDur(ap50), pre, fmtDur(ow50), pre, fmtRatio(ap50.Seconds(), ow50.Seconds()), target)
	}

	b.WriteString("\n## Agent overhead apart from card time\n\n")
	b.WriteString("Overhead = wall time seen by the portal − time inside the card transport (`cardTime`, PC/SC + vpcd + card, " +
		"as the engine logs it) − the PIN dialog (the pinentry program's run, logged by the agent). It covers HTTPS, JSON, " +
		"the request gate, base64, verifying the card's signature before answering, logging, and the PC/SC transactions " +
		"(begin, and end with the card reset that clears the PIN).\n\n")
	b.WriteString("| Operation | wall p50 | card transport p50 | of which modelled card | PIN dialog p50 | overhead p50 | p90 | max | overhead / modelled card time | target < 1 % |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, op := range []string{opSign, opAuth} {
		o := r.find(op, toolAgent)
		if o == nil {
			continue
		}
		ov := o.durs(func(s Sample) (time.Duration, bool) { return s.Overhead() })
		ct := o.durs(func(s Sample) (time.Duration, bool) {
			if s.Engine == nil {
				return 0, false
			}
			return s.Engine.CardTime, true
		})
		pr := o.durs(func(s Sample) (time.Duration, bool) {
			if s.Engine == nil {
				return 0, false
			}
			return s.Engine.Prompt, true
		})
		mod := Percentile(o.durs(func(s Sample) (time.Duration, bool) { return s.Modelled, s.OK }), 50)
		p50, _, _ := o.wallPercentiles()
		ov50 := Percentile(ov, 50)
		share := 0.0
		if mod > 0 {
			share = 100 * float64(ov50) / float64(mod)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %.2f %% | %s |\n", opTitles[op], fmtDur(p50), fmtDur(Percentile(ct, 50)),
			fmtDur(mod), fmtDur(Percentile(pr, 50)), fmtDur(ov50), fmtDur(Percentile(ov, 90)), fmtDur(Percentile(ov, 100)), share,
			pass(mod > 0 && share < 1))
	}

	res := r.Resources
	b.WriteString("\n## Resources (agent headless, `cpsagent serve`, card in the reader)\n\n")
	b.WriteString("| Measure | Value | Target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| Idle CPU over %s | %s (%.4f %% of one core) | < 0.1 %%: %s |\n", fmtDur(res.IdleWindow), fmtDur(res.IdleCPU),
		res.IdleCPUPercent, pass(res.IdleWindow > 0 && res.IdleCPUPercent < 0.1))
	wps := 0.0
	if res.IdleWindow > 0 {
		wps = float64(res.IdleWakeups) / res.IdleWindow.Seconds()
	}
	fmt.Fprintf(&b, "| Idle wake-ups (context switches, all %d threads) | %d over %s (%.2f /s) | the agent does not poll |\n",
		res.IdleThreads, res.IdleWakeups, fmtDur(res.IdleWindow), wps)
	fmt.Fprintf(&b, "| Resident memory idle (VmRSS) | %s | < 40 MiB: %s |\n", fmtMiB(res.IdleRSSKiB), pass(res.IdleRSSKiB > 0 && res.IdleRSSKiB < 40*1024))
	fmt.Fprintf(&b, "| Resident memory after load (%d requests, %d clients) | %s (peak VmHWM %s) | |\n", res.LoadRequests,
		res.LoadConcurrency, fmtMiB(res.LoadRSSKiB), fmtMiB(res.LoadHWMKiB))
	fmt.Fprintf(&b, "| Binary size (linux/amd64, `-trimpath -ldflags \"-s -w\"`, with tray) | %.1f MiB | |\n", float64(res.BinaryBytes)/(1<<20))
	if res.NotrayBytes > 0 {
		fmt.Fprintf(&b, "| Binary size, `-tags notray` | %.1f MiB | |\n", float64(res.NotrayBytes)/(1<<20))
	}
	fmt.Fprintf(&b, "| Start-up to first `/v1/status` answer (state present) | p50 %s, max %s (%d runs) | |\n",
		fmtDur(Percentile(res.Startup, 50)), fmtDur(Percentile(res.Startup, 100)), len(res.Startup))
	fmt.Fprintf(&b, "| First start-up (creates the local CA and TLS key) | p50 %s, max %s (%d runs) | |\n",
		fmtDur(Percentile(res.FirstStartup, 50)), fmtDur(Percentile(res.FirstStartup, 100)), len(res.FirstStartup))

	if len(r.Limits) > 0 {
		b.WriteString("\n## Physical limit\n\n")
		b.WriteString("Floor = the card's RSA time + the T=0 transfer of the minimal exchange's characters at the model's byte time " +
			"(header, one procedure byte, data, status). \"Model price\" also charges the model's per-exchange cost.\n\n")
		b.WriteString("| Operation | minimal exchange | T=0 chars | transfer | RSA | floor | model price | cpsagent modelled card p50 | cpsagent wall p50 | wall / floor |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range r.Limits {
			names := make([]string, 0, len(l.Exchange))
			for _, x := range l.Exchange {
				n, _, _ := strings.Cut(x, ":")
				names = append(names, n)
			}
			ratio := "–"
			if l.Total > 0 && l.AgentP50 > 0 {
				ratio = fmt.Sprintf("%.2f", float64(l.AgentP50)/float64(l.Total))
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", opTitles[l.Op], strings.Join(names, ", "), l.Bytes,
				fmtDur(l.Transfer), fmtDur(l.RSA), fmtDur(l.Total), fmtDur(l.ModelMin), fmtDur(l.AgentCard), fmtDur(l.AgentP50), ratio)
		}
	}

	if len(r.Findings) > 0 {
		b.WriteString("\n## Findings during the run\n\n")
		for _, f := range r.Findings {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	fmt.Fprintf(&b, "\n## Environment\n\n- %s, %d cores, kernel %s, load average %s at the start, %s at the end\n- %s; agent `%s`; %s; pcscd %s\n- %s\n",
		e.CPU, e.Cores, e.Kernel, e.LoadAvg, e.LoadAvgAt, e.GoVersion, e.Agent, e.OpenSC, e.PCSCLite, e.Date)
	return b.String()
}
