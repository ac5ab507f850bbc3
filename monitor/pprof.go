package monitor

import (
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/sirupsen/logrus"
)

// defaultMemProfileRate is the Go runtime's own default. The daemon starts
// with the memory profiler off (its sampling keeps a table of over a
// megabyte that a daemon of a few megabytes of heap does not need).
const defaultMemProfileRate = 512 * 1024

// ListenProfiler opens addr (-pprof-addr, which the caller has checked is
// a loopback address) for Go's profiler under /debug/pprof/, and turns the
// memory profiler back on. It leaves out /debug/pprof/cmdline, which
// would show the command line and with it the registry URIs' passwords:
// it answers 404, as every other path does.
func ListenProfiler(addr string, log *logrus.Entry) (*Server, error) {
	runtime.MemProfileRate = defaultMemProfileRate
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s, err := Listen(addr, mux, log)
	if err != nil {
		return nil, err
	}
	s.serves = "Go's profiler under /debug/pprof/"
	return s, nil
}
