package main

import "testing"

func TestMedianOfTakesEachFigureSeparately(t *testing.T) {
	rs := []result{
		{Backend: "consul", LatencyMS: map[string]float64{"median": 9, "p90": 20, "p99": 50}, StartupSync: map[string]float64{"500": 4}, SteadyCPUPerMin: 2.0, PeakRSSMB: 30},
		{Backend: "consul", LatencyMS: map[string]float64{"median": 12, "p90": 18, "p99": 30}, StartupSync: map[string]float64{"500": 3}, SteadyCPUPerMin: 1.0, PeakRSSMB: 28},
		{Backend: "consul", LatencyMS: map[string]float64{"median": 10, "p90": 25, "p99": 40}, StartupSync: map[string]float64{"500": 5}, SteadyCPUPerMin: 3.0, PeakRSSMB: 29},
	}
	m := medianOf(rs)
	if m.LatencyMS["median"] != 10 || m.LatencyMS["p90"] != 20 || m.LatencyMS["p99"] != 40 {
		t.Errorf("latency %v, want 10/20/40", m.LatencyMS)
	}
	if m.StartupSync["500"] != 4 || m.SteadyCPUPerMin != 2 || m.PeakRSSMB != 29 || m.Backend != "consul" {
		t.Errorf("median result %+v", m)
	}
	if rs[0].LatencyMS["median"] != 9 {
		t.Error("medianOf changed its input")
	}
	// Two runs: the lower middle value.
	if got := medianOf(rs[:2]).SteadyCPUPerMin; got != 1 {
		t.Errorf("median of 2.0 and 1.0 = %v, want 1.0", got)
	}
}
