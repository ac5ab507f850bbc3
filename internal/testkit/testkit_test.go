package testkit

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const exposition = `# TYPE registrator_writes_total counter
registrator_writes_total{action="register",backend="consul://a",result="ok"} 3
registrator_writes_total{action="register",backend="etcd://b",result="ok"} 4
registrator_writes_total{action="register",backend="consul://a",result="error"} 1
registrator_writes_total{action="deregister",backend="consul://a",result="ok"} 2
# TYPE registrator_docker_up gauge
registrator_docker_up 1
# TYPE registrator_write_duration_seconds histogram
registrator_write_duration_seconds_bucket{action="register",backend="consul://a",le="+Inf"} 5
registrator_write_duration_seconds_sum{action="register",backend="consul://a"} 0.25
registrator_write_duration_seconds_count{action="register",backend="consul://a"} 5
registrator_write_duration_seconds_bucket{action="register",backend="etcd://b",le="+Inf"} 2
registrator_write_duration_seconds_sum{action="register",backend="etcd://b"} 0.5
registrator_write_duration_seconds_count{action="register",backend="etcd://b"} 2
`

func TestScrapeAndSum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	m, err := Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"registrator_writes_total", nil, 10},
		{"registrator_writes_total", []string{`result="ok"`}, 9},
		{"registrator_writes_total", []string{`action="register"`, `result="ok"`}, 7},
		{"registrator_writes_total", []string{`action="register"`, `backend="consul://a"`, `result="ok"`}, 3},
		{"registrator_writes_total", []string{`result="nope"`}, 0},
		{"registrator_docker_up", nil, 1},
		{"registrator_write_duration_seconds_count", nil, 7},
		{"registrator_write_duration_seconds_sum", []string{`backend="etcd://b"`}, 0.5},
		{"registrator_missing", nil, 0},
	} {
		if got := m.Sum(tc.name, tc.labels...); got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestEventually(t *testing.T) {
	n := 0
	if err := Eventually(context.Background(), time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Eventually: %v after %d calls, want nil after 3", err, n)
	}
	err := Eventually(context.Background(), 20*time.Millisecond, time.Millisecond, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never") {
		t.Fatalf("Eventually past its timeout: %v, want the last error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Eventually(ctx, time.Hour, time.Hour, func() error { return errors.New("no") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Eventually with its context done: %v", err)
	}
}

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		script string
		killed bool
	}{
		{"echo ready; sleep 30", false},                               // ends on SIGTERM
		{"trap '' TERM; echo ready; while :; do sleep 1; done", true}, // ignores it
	} {
		cmd := exec.Command("sh", "-c", tc.script)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // its trap is set
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if killed := Stop(cmd.Process, exited, 500*time.Millisecond); killed != tc.killed {
			t.Errorf("%q: killed %v, want %v", tc.script, killed, tc.killed)
		}
	}
}
