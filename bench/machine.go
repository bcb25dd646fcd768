package main

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// machine describes where the figures come from.
type machine struct {
	CPU        string
	Cores      int // runtime.NumCPU: the CPUs this process may run on
	GOMAXPROCS int
	Kernel     string
	Go         string
	Wrk        string
}

func machineInfo() machine {
	return machine{
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Kernel:     kernelRelease(),
		Go:         runtime.Version(),
	}
}

// wrkVersion returns wrk's first line of `wrk -v` ("wrk 4.1.0 [epoll]
// …"), which exits non-zero by design.
func wrkVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	if i := strings.Index(line, " Copyright"); i > 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// loadStats is the 1-minute load average over a run.
type loadStats struct {
	Start, End string  // /proc/loadavg's three figures
	Min, Max   float64 // of the 1-minute figure, sampled
	Samples    int
}

// loadSampler reads the 1-minute load average every interval: the machine
// is shared, and the report says how busy it was while it measured.
type loadSampler struct {
	stop chan struct{}
	once sync.Once
	done chan loadStats
	last loadStats
}

func startLoadSampler(interval time.Duration) *loadSampler {
	s := &loadSampler{stop: make(chan struct{}), done: make(chan loadStats, 1)}
	st := loadStats{Start: loadAverage(), Min: -1}
	sample := func() {
		f := strings.Fields(loadAverage())
		if len(f) == 0 {
			return
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return
		}
		if st.Min < 0 || v < st.Min {
			st.Min = v
		}
		st.Max = max(st.Max, v)
		st.Samples++
	}
	sample()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				sample()
			case <-s.stop:
				sample()
				st.End = loadAverage()
				s.done <- st
				return
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns what it saw; later calls return the
// same.
func (s *loadSampler) Stop() loadStats {
	s.once.Do(func() {
		close(s.stop)
		s.last = <-s.done
	})
	return s.last
}

// randomToken returns 32 random hex digits.
func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
