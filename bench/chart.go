package main

import (
	"fmt"
	"html"
	"math"
	"strings"
	"unicode/utf8"
)

// Chart geometry, in SVG user units (pixels at 100%).
const (
	chartCharW  = 7   // a generous width of one character of the labels
	chartPanelW = 300 // each of the two panels
	chartGap    = 40  // between the panels
	chartRowH   = 30
	chartTop    = 64 // titles
	chartBottom = 44 // axes and the note
	chartBarH   = 16
)

// chartPanel is one of the chart's two bar panels.
type chartPanel struct {
	Title  string
	Values []summary
	Format string  // of the value written after each bar
	Mark   float64 // a dashed reference line (a target); NaN for none
	MarkAt string  // its label
}

// guardChart draws the guard figures as an SVG of two panels of
// horizontal bars, one bar per setup: throughput ÷ baseline and Caddy's
// CPU per request at the fixed rate, each with a whisker from the lowest
// to the highest round. It is written by hand, to need no dependency.
func guardChart(rows []guardRow, rate int) string {
	ratio, cpu := make([]summary, len(rows)), make([]summary, len(rows))
	for i, row := range rows {
		ratio[i], cpu[i] = row.Ratio, row.CPU
		if row.Setup == setupBaseline {
			ratio[i] = summary{Median: 1, Min: 1, Max: 1, N: 1}
		}
	}
	panels := []chartPanel{
		{Title: "Throughput ÷ baseline (wrk, saturated)", Values: ratio, Format: "%.2f×", Mark: minGuardRatio, MarkAt: "target 0.90"},
		{Title: fmt.Sprintf("Caddy CPU µs per request at %d req/s", rate), Values: cpu, Format: "%.0f", Mark: math.NaN()},
	}
	// The label column fits the longest setup name.
	labelW := 120
	for _, row := range rows {
		labelW = max(labelW, chartCharW*utf8.RuneCountInString(row.Setup.Label)+20)
	}
	width := labelW + len(panels)*chartPanelW + (len(panels)-1)*chartGap + 20
	height := chartTop + len(rows)*chartRowH + chartBottom

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="10" y="20" font-size="14" font-weight="bold">Gatehouse guard vs plain reverse_proxy: medians, whiskers from the lowest to the highest round</text>` + "\n")
	for i, row := range rows {
		y := chartTop + i*chartRowH + chartRowH/2
		p(`<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", labelW-10, y, html.EscapeString(row.Setup.Label))
	}
	for i, panel := range panels {
		x0 := labelW + i*(chartPanelW+chartGap)
		writePanel(&b, panel, x0)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// writePanel draws one panel with its left edge at x0.
func writePanel(b *strings.Builder, panel chartPanel, x0 int) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	hi := 0.0
	for _, v := range panel.Values {
		if v.N > 0 {
			hi = max(hi, v.Max, v.Median)
		}
	}
	if !math.IsNaN(panel.Mark) {
		hi = max(hi, panel.Mark)
	}
	hi = niceCeil(hi * 1.15) // room for the value after the longest bar
	scale := func(v float64) float64 { return float64(x0) + v/hi*float64(chartPanelW) }
	bottom := chartTop + len(panel.Values)*chartRowH

	p(`<g class="panel">` + "\n")
	p(`<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, chartTop-16, html.EscapeString(panel.Title))
	// Axis with five ticks.
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, chartTop-4, x0, bottom)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, bottom, x0+chartPanelW, bottom)
	for t := 0; t <= 4; t++ {
		v := hi * float64(t) / 4
		x := scale(v)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, chartTop-4, x, bottom)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x, bottom+16, tickLabel(v))
	}
	for i, v := range panel.Values {
		if v.N == 0 {
			continue
		}
		y := chartTop + i*chartRowH + (chartRowH-chartBarH)/2
		mid := float64(y) + chartBarH/2
		p(`<rect class="bar" x="%d" y="%d" width="%.1f" height="%d" fill="#1f6feb"/>`+"\n", x0, y, scale(v.Median)-float64(x0), chartBarH)
		if v.N > 1 {
			lo, hiX := scale(v.Min), scale(v.Max)
			p(`<line class="whisker" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#111" stroke-width="1.5"/>`+"\n", lo, mid, hiX, mid)
			for _, x := range []float64{lo, hiX} {
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#111" stroke-width="1.5"/>`+"\n", x, mid-5, x, mid+5)
			}
		}
		p(`<text x="%.1f" y="%.1f" dominant-baseline="middle" fill="#111">%s</text>`+"\n", max(scale(v.Max), scale(v.Median))+6, mid, html.EscapeString(fmt.Sprintf(panel.Format, v.Median)))
	}
	if !math.IsNaN(panel.Mark) {
		x := scale(panel.Mark)
		p(`<line class="mark" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#d1242f" stroke-dasharray="4 3"/>`+"\n", x, chartTop-4, x, bottom)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#d1242f">%s</text>`+"\n", x, bottom+32, html.EscapeString(panel.MarkAt))
	}
	p("</g>\n")
}

// niceCeil rounds v up to the next of 1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6 or
// 8 times a power of ten: close enough above v not to waste the panel,
// and with quarter ticks that are short decimals.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10} {
		if m*pow >= v {
			return m * pow
		}
	}
	return 10 * pow
}

// tickLabel writes a tick value without needless decimals.
func tickLabel(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
