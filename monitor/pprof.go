package monitor

import (
	"net/http"
	"net/http/pprof"
	"runtime"
)

// defaultMemProfileRate is the Go runtime's own default. The daemon starts
// with the memory profiler off (its sampling keeps a table of over a
// megabyte that a daemon of a few megabytes of heap does not need).
const defaultMemProfileRate = 512 * 1024

// WithProfiler adds Go's profiler under /debug/pprof/ to h (-pprof) and
// turns the memory profiler back on.
func WithProfiler(h http.Handler) http.Handler {
	runtime.MemProfileRate = defaultMemProfileRate
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
