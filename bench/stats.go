package main

import (
	"math"
	"slices"
	"time"
)

// summary describes the values one figure took over the rounds.
type summary struct {
	Median, Min, Max float64
	N                int // values that were not NaN
}

// summarize returns the median, minimum and maximum of xs, skipping NaN
// (a round whose phase failed). With no values, all three are NaN.
func summarize(xs []float64) summary {
	vals := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(vals)
	n := len(vals)
	med := vals[n/2]
	if n%2 == 0 {
		med = (vals[n/2-1] + vals[n/2]) / 2
	}
	return summary{Median: med, Min: vals[0], Max: vals[n-1], N: n}
}

// spreadPercent is half the range of the values as a percentage of their
// median: what "± x%" means in the tables.
func (s summary) spreadPercent() float64 {
	if s.N == 0 || s.Median == 0 {
		return math.NaN()
	}
	return (s.Max - s.Min) / 2 / math.Abs(s.Median) * 100
}

// quantile returns the q-quantile (0 ≤ q ≤ 1) of sorted by the
// nearest-rank method: the smallest value with at least q of the values
// at or below it. It returns 0 for no values.
func quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}
