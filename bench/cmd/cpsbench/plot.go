package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotOps are the groups of the latency plot.
var plotOps = []struct{ op, label string }{
	{opSign, "signature"},
	{opAuth, "authentication"},
	{opColdID, "cold identity"},
	{opColdSign, "cold read + sign"},
	{opColdAuth, "cold read + auth"},
}

// plotLatency draws p50/p90/p99 wall time per operation, cpsagent (blues)
// next to OpenSC (oranges). OpenSC's failed signature is drawn with its
// projected completion (hatched in the legend text).
func plotLatency(r *Results, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("cpsagent vs OpenSC on one virtual CPS3 (latency model %s)", r.Env.Latency)
	p.Y.Label.Text = "wall time per operation (s)"
	p.Y.Min = 0
	names := make([]string, len(plotOps))
	for i, o := range plotOps {
		names[i] = o.label
	}
	w := vg.Points(13)
	top := 0.0
	series := []struct {
		tool  string
		pct   int
		color color.RGBA
	}{
		{toolAgent, 50, color.RGBA{R: 0x1f, G: 0x4e, B: 0x9a, A: 0xff}},
		{toolAgent, 90, color.RGBA{R: 0x4a, G: 0x86, B: 0xd0, A: 0xff}},
		{toolAgent, 99, color.RGBA{R: 0x9c, G: 0xc3, B: 0xee, A: 0xff}},
		{toolOpenSC, 50, color.RGBA{R: 0xc4, G: 0x52, B: 0x0a, A: 0xff}},
		{toolOpenSC, 90, color.RGBA{R: 0xee, G: 0x86, B: 0x2f, A: 0xff}},
		{toolOpenSC, 99, color.RGBA{R: 0xf7, G: 0xc0, B: 0x8a, A: 0xff}},
	}
	signFailed := false
	for k, s := range series {
		vals := make(plotter.Values, len(plotOps))
		for i, o := range plotOps {
			res := r.find(o.op, s.tool)
			if res == nil {
				continue
			}
			if res.allFailed() {
				signFailed = true
			}
			p50, p90, p99 := res.wallPercentiles()
			vals[i] = map[int]float64{50: p50.Seconds(), 90: p90.Seconds(), 99: p99.Seconds()}[s.pct]
			top = max(top, vals[i])
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = vg.Length(0)
		bars.Color = s.color
		bars.Offset = vg.Length(float64(k)-2.5) * w
		p.Add(bars)
		label := fmt.Sprintf("%s p%d", s.tool, s.pct)
		p.Legend.Add(label, bars)
	}
	// Room above the tallest bar for the legend.
	p.Y.Max = top * 1.6
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	p.Title.Padding = vg.Points(8)
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	if signFailed {
		p.X.Label.Text = "OpenSC cannot sign with this card (OpenSSL 3 build): its signature bars are the attempt + the projected PSO HASH/CDS/GET RESPONSE"
	}
	return p.Save(11*vg.Inch, 5.5*vg.Inch, path)
}
