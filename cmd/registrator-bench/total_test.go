package main

import "testing"

func TestTotal(t *testing.T) {
	samples := []sample{
		{name: "registrator_writes_total", labels: `action="register",backend="consul://x",result="ok"`, value: 3},
		{name: "registrator_writes_total", labels: `action="register",backend="consul://x",result="error"`, value: 2},
		{name: "registrator_writes_total", labels: `action="deregister",backend="consul://x",result="ok"`, value: 5},
		{name: "registrator_write_duration_seconds_sum", labels: `action="register",backend="consul://x"`, value: 0.5},
	}
	if got := total(samples, "registrator_writes_total", `action="register"`, `result="ok"`); got != 3 {
		t.Errorf("ok registers = %v, want 3", got)
	}
	if got := total(samples, "registrator_writes_total"); got != 10 {
		t.Errorf("all writes = %v, want 10", got)
	}
	if got := total(samples, "registrator_write_duration_seconds_sum", `action="register"`); got != 0.5 {
		t.Errorf("duration sum = %v, want 0.5", got)
	}
}
