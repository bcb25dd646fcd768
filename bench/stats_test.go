package main

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	tests := []struct {
		name string
		in   []float64
		want summary
	}{
		{"odd", []float64{5, 1, 3}, summary{Median: 3, Min: 1, Max: 5, N: 3}},
		{"even", []float64{4, 1, 3, 2}, summary{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"one", []float64{7}, summary{Median: 7, Min: 7, Max: 7, N: 1}},
		{"NaN skipped", []float64{nan, 2, nan, 4}, summary{Median: 3, Min: 2, Max: 4, N: 2}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("%s: summarize(%v) = %+v, want %+v", tt.name, tt.in, got, tt.want)
		}
	}
	if got := summarize([]float64{nan}); got.N != 0 || !math.IsNaN(got.Median) {
		t.Errorf("summarize(NaN) = %+v, want N 0 and a NaN median", got)
	}
	// The input is not reordered.
	in := []float64{3, 1, 2}
	summarize(in)
	if in[0] != 3 || in[1] != 1 {
		t.Errorf("summarize sorted its input: %v", in)
	}
}

func TestSpreadPercent(t *testing.T) {
	t.Parallel()
	if got := (summary{Median: 100, Min: 90, Max: 110, N: 3}).spreadPercent(); got != 10 {
		t.Errorf("spreadPercent = %v, want 10", got)
	}
	if got := (summary{}).spreadPercent(); !math.IsNaN(got) {
		t.Errorf("spreadPercent of nothing = %v, want NaN", got)
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tt := range tests {
		if got := quantile(d, tt.q); got != tt.want {
			t.Errorf("quantile(1..100 ms, %v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile(nil) = %v", got)
	}
	if got := quantile([]time.Duration{3, 9}, 0.5); got != 3 {
		t.Errorf("quantile of two, 0.5 = %v, want the lower (nearest rank)", got)
	}
}
