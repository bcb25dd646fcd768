package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

// svgCounts parses svg as XML, failing on anything not well-formed, and
// counts the elements of each class and the text of every <text>.
func svgCounts(t *testing.T, svg string) (classes map[string]int, texts []string) {
	t.Helper()
	classes = map[string]int{}
	d := xml.NewDecoder(strings.NewReader(svg))
	inText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			for _, a := range el.Attr {
				if a.Name.Local == "class" {
					classes[a.Value]++
				}
			}
			inText = el.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(el))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return classes, texts
}

func TestGuardChart(t *testing.T) {
	t.Parallel()
	rows := testGuard(0.95, 4).rows()
	rows[1].Setup.Label = "guard <JWT> & co" // must be escaped
	svg := guardChart(rows, 1000)
	if !strings.HasPrefix(svg, `<svg xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("does not start as an SVG document: %.80s", svg)
	}
	classes, texts := svgCounts(t, svg)
	// Two panels, one bar per setup in each; whiskers where the rounds
	// differ (every setup but the baseline's ratio, fixed at 1).
	if classes["panel"] != 2 {
		t.Errorf("%d panels, want 2", classes["panel"])
	}
	if want := 2 * len(rows); classes["bar"] != want {
		t.Errorf("%d bars, want %d (one per setup and panel)", classes["bar"], want)
	}
	if want := 2*len(rows) - 1; classes["whisker"] != want {
		t.Errorf("%d whiskers, want %d", classes["whisker"], want)
	}
	if classes["mark"] != 1 {
		t.Errorf("%d target lines, want 1 (0.90 on the ratio panel)", classes["mark"])
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"guard <JWT> & co", "0.95×", "0.50×", "Caddy CPU µs per request at 1000 req/s", "target 0.90"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no text %q among %q", want, texts)
		}
	}
}

// Bars are proportional: the forward_auth ratio bar (0.5) is half the
// baseline's (1).
func TestGuardChartProportions(t *testing.T) {
	t.Parallel()
	rows := testGuard(0.95, 4).rows()
	svg := guardChart(rows, 1000)
	var widths []string
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "rect" {
			var class, width string
			for _, a := range el.Attr {
				switch a.Name.Local {
				case "class":
					class = a.Value
				case "width":
					width = a.Value
				}
			}
			if class == "bar" {
				widths = append(widths, width)
			}
		}
	}
	// The first len(rows) bars are the ratio panel's, in setup order.
	i := slices.IndexFunc(rows, func(r guardRow) bool { return r.Setup == setupForward })
	base, fwd := widths[0], widths[i]
	var b, f float64
	if _, err := fmt.Sscan(base, &b); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(fwd, &f); err != nil {
		t.Fatal(err)
	}
	if b <= 0 || f/b < 0.49 || f/b > 0.51 {
		t.Errorf("baseline bar %s, forward_auth bar %s: want half", base, fwd)
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	tests := map[float64]float64{0.9: 1, 1.1: 1.2, 1.15: 1.2, 1.3: 1.6, 2.2: 2.4, 3: 3, 540: 600, 7000: 8000, 0: 1, 1: 1}
	for in, want := range tests {
		if got := niceCeil(in); math.Abs(got-want) > 1e-9*want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

// The label column is wide enough for the longest setup name: its
// right-aligned text ends at x, and starts at x − its width, which must
// stay on the canvas.
func TestGuardChartLabelsFit(t *testing.T) {
	t.Parallel()
	rows := testGuard(0.95, 4).rows()
	rows[2].Setup.Label = strings.Repeat("w", 60)
	svg := guardChart(rows, 1000)
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		el, ok := tok.(xml.StartElement)
		if !ok || el.Name.Local != "text" {
			continue
		}
		var x float64
		var end bool
		for _, a := range el.Attr {
			switch {
			case a.Name.Local == "x":
				if _, err := fmt.Sscan(a.Value, &x); err != nil {
					t.Fatal(err)
				}
			case a.Name.Local == "text-anchor" && a.Value == "end":
				end = true
			}
		}
		if !end {
			continue
		}
		// 6.5 px is about the width of a character at 12 px.
		if x < 6.5*60 {
			t.Errorf("labels end at x = %v: a label of 60 characters starts off the canvas", x)
		}
		return
	}
	t.Fatal("no right-aligned label")
}
