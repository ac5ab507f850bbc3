package main

import (
	"fmt"
	"strconv"
	"strings"
)

// The side-by-side mode's report: every run's figures of both programs
// (the JSON of -out) and the table of them with the ratios.

// figures is one program's figures of one run.
type figures struct {
	LatencyMS   map[string]float64 `json:"latency_ms"`           // median, p90
	FloorMS     map[string]float64 `json:"latency_floor_ms"`     // start_event, agent_write, sum: medians
	SyncS       map[string]float64 `json:"startup_sync_s"`       // by N
	PeakRSSMB   map[string]float64 `json:"peak_rss_mb"`          // after the sync of N, by N
	SteadyCPU   float64            `json:"steady_cpu_s_per_min"` // -resync 1, nothing changing
	BurstStartS map[string]float64 `json:"burst_start_s"`        // by B: to the last registration
	BurstMissed map[string]float64 `json:"burst_start_missed"`   // by B: never registered
	BurstRmS    map[string]float64 `json:"burst_remove_s"`       // by B: to the last removal
	BurstLeft   map[string]float64 `json:"burst_remove_left"`    // by B: never removed
}

type sideReport struct {
	Machine map[string]string    `json:"machine"`
	Runs    int                  `json:"runs"`
	PerRun  map[string][]figures `json:"per_run"` // by program
}

// printSide prints each figure for both programs, every run's value and
// the ratio ours / peer per run and its median.
func printSide(rep sideReport, ours, peer string, syncNs []int, steady bool, burstNs []int) {
	fmt.Printf("machine: %v\n\n", rep.Machine)
	fmt.Printf("| figure | %s | %s | ratio per run | median ratio |\n|---|---|---|---|---|\n", ours, peer)
	row := func(what string, get func(f figures) float64, unit string) {
		var a, b, ratio []string
		var ratios []float64
		for i := range rep.PerRun[ours] {
			x, y := get(rep.PerRun[ours][i]), get(rep.PerRun[peer][i])
			a, b = append(a, fmt.Sprintf("%.3g", x)), append(b, fmt.Sprintf("%.3g", y))
			if y > 0 {
				ratios = append(ratios, x/y)
				ratio = append(ratio, fmt.Sprintf("%.2f", x/y))
			} else {
				ratio = append(ratio, "-")
			}
		}
		med := "-"
		if len(ratios) > 0 {
			med = fmt.Sprintf("%.2f", percentile(ratios, 50))
		}
		fmt.Printf("| %s | %s %s | %s %s | %s | %s |\n", what, strings.Join(a, ", "), unit, strings.Join(b, ", "), unit, strings.Join(ratio, ", "), med)
	}
	if len(rep.PerRun[ours]) > 0 && rep.PerRun[ours][0].LatencyMS != nil {
		row("latency StartedAt → in Consul's catalog, median", func(f figures) float64 { return f.LatencyMS["median"] }, "ms")
		row("latency, p90", func(f figures) float64 { return f.LatencyMS["p90"] }, "ms")
		row("floor: start event + one agent write (same run)", func(f figures) float64 { return f.FloorMS["sum"] }, "ms")
	}
	for _, n := range syncNs {
		k := strconv.Itoa(n)
		row("startup sync of "+k, func(f figures) float64 { return f.SyncS[k] }, "s")
		row("peak RSS after the sync of "+k, func(f figures) float64 { return f.PeakRSSMB[k] }, "MB")
	}
	if steady {
		row("CPU over -resync 1, nothing changing", func(f figures) float64 { return f.SteadyCPU }, "s/min")
	}
	for _, n := range burstNs {
		k := strconv.Itoa(n)
		row("burst of "+k+" started: to the last registration", func(f figures) float64 { return f.BurstStartS[k] }, "s")
		row("burst of "+k+" started: never registered", func(f figures) float64 { return f.BurstMissed[k] }, "")
		row("burst of "+k+" removed: to the last removal", func(f figures) float64 { return f.BurstRmS[k] }, "s")
		row("burst of "+k+" removed: never removed", func(f figures) float64 { return f.BurstLeft[k] }, "")
	}
}
