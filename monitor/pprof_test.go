package monitor

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// The profiler's listener serves the profiles and nothing else: not the
// command line, which holds the registry URIs with their passwords, and
// not the monitor's pages.
func TestProfilerLeavesOutTheCommandLine(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	s, err := ListenProfiler("127.0.0.1:0", logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + s.l.Addr().String()
	for path, want := range map[string]int{
		"/debug/pprof/":                  200,
		"/debug/pprof/heap?debug=1":      200,
		"/debug/pprof/goroutine?debug=2": 200,
		"/debug/pprof/symbol":            200,
		"/debug/pprof/cmdline":           404,
		"/debug/pprof/cmdline?debug=1":   404,
		"/metrics":                       404,
		"/v1/services":                   404,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if strings.Contains(string(body), strings.Join(os.Args, "\x00")) { // as cmdline writes it
			t.Errorf("GET %s shows the command line", path)
		}
	}
}
