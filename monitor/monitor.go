// Package monitor tells operators what the daemon is doing, over HTTP:
// Prometheus metrics at /metrics, liveness at /health, readiness at /ready
// and what this host registers, with each entry's state per backend, at
// /v1/services.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

// PingEvery is how often every backend is pinged for /ready and the
// registrator_backend_up metric.
const PingEvery = 5 * time.Second

// Monitor collects metrics and state. Create it with New, add each
// backend's bridge with Add, feed it Docker's events, and run it with Run.
type Monitor struct {
	set        *metrics.Set
	reconnects *metrics.Counter
	dockerUp   *metrics.Gauge

	mu        sync.Mutex
	docker    string // "" when the event stream is up, else why not
	bridges   []named
	pingErr   map[string]string // by backend: the last ping's error; absent until pinged
	connected bool              // the event stream was up at least once
}

type named struct {
	name string
	b    *bridge.Bridge
}

// The histograms' buckets, in seconds: 1 ms to 16 s; a write's from 0.5 ms.
var (
	secondsBuckets = metrics.ExponentialBuckets(0.001, 2, 15)
	writeBuckets   = metrics.ExponentialBuckets(0.0005, 2, 16)
)

// New returns a monitor with its unlabelled metrics at their zero; a
// labelled series appears with its first value. What each metric means is
// in docs/monitoring.md.
func New() *Monitor {
	// Every family gets its TYPE line (and a HELP line naming it), as the
	// Prometheus client wrote them.
	metrics.ExposeMetadata(true)
	m := &Monitor{
		set:     metrics.NewSet(),
		docker:  "not connected to the Docker event stream yet",
		pingErr: map[string]string{},
	}
	m.reconnects = m.set.NewCounter("registrator_event_stream_reconnects_total")
	m.dockerUp = m.set.NewGauge("registrator_docker_up", nil)
	m.set.RegisterMetricsWriter(m.writeState)
	return m
}

// series names one series of a family: name{k="v",...}, each value
// escaped as the exposition format wants. kv alternates names and values.
func series(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func (m *Monitor) counter(name string, kv ...string) *metrics.Counter {
	return m.set.GetOrCreateCounter(series(name, kv...))
}

func (m *Monitor) histogram(name string, buckets []float64, kv ...string) *metrics.PrometheusHistogram {
	return m.set.GetOrCreatePrometheusHistogramExt(series(name, kv...), buckets)
}

// Add registers a backend's bridge under a name (its redacted URI), the
// name its Observer was made with.
func (m *Monitor) Add(name string, b *bridge.Bridge) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bridges = append(m.bridges, named{name, b})
}

// Observer returns the bridge.Observer of the named backend.
func (m *Monitor) Observer(name string) bridge.Observer { return observer{m, name} }

type observer struct {
	m    *Monitor
	name string
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (o observer) Reconciled(took time.Duration, err error, missing, stale int) {
	o.m.counter("registrator_reconciles_total", "backend", o.name, "result", result(err)).Inc()
	o.m.histogram("registrator_reconcile_duration_seconds", secondsBuckets, "backend", o.name).Update(took.Seconds())
	if err == nil {
		o.m.counter("registrator_drift_repaired_total", "backend", o.name, "kind", "missing").Add(missing)
		o.m.counter("registrator_drift_repaired_total", "backend", o.name, "kind", "stale").Add(stale)
	}
}

func (o observer) Wrote(action string, took time.Duration, err error) {
	o.m.counter("registrator_writes_total", "action", action, "backend", o.name, "result", result(err)).Inc()
	o.m.histogram("registrator_write_duration_seconds", writeBuckets, "action", action, "backend", o.name).Update(took.Seconds())
}

func (o observer) Synced(took time.Duration) {
	o.m.histogram("registrator_event_to_registry_seconds", secondsBuckets, "backend", o.name).Update(took.Seconds())
}

// Event counts a Docker event.
func (m *Monitor) Event(typ, action string) {
	m.counter("registrator_events_total", "action", action, "type", typ).Inc()
}

// DockerConnected notes that the event stream is established.
func (m *Monitor) DockerConnected() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.connected && m.docker != "" {
		m.reconnects.Inc()
	}
	m.connected, m.docker = true, ""
	m.dockerUp.Set(1)
}

// DockerLost notes that the event stream broke.
func (m *Monitor) DockerLost(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docker = "Docker event stream lost: " + errString(err)
	m.dockerUp.Set(0)
}

func errString(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// PingTimeout bounds each ping. A ping that has not returned
// pingGrace after it (a backend that does not heed its context) counts
// as a failed one until it returns.
const (
	PingTimeout = 2 * time.Second
	pingGrace   = 500 * time.Millisecond
)

// Run pings every backend now and every PingEvery until ctx is done, for
// /ready and registrator_backend_up: run it only where something serves
// them. The backends are pinged at once, each on its own: one that hangs
// holds up neither the others' pings nor their state, and is not pinged
// again until its ping returns.
func (m *Monitor) Run(ctx context.Context) {
	tick := time.NewTicker(PingEvery)
	defer tick.Stop()
	var busyMu sync.Mutex
	busy := map[string]bool{} // backends whose ping is under way
	for {
		m.mu.Lock()
		bridges := slices.Clone(m.bridges)
		m.mu.Unlock()
		for _, n := range bridges {
			busyMu.Lock()
			if busy[n.name] {
				busyMu.Unlock()
				continue
			}
			busy[n.name] = true
			busyMu.Unlock()
			go func() {
				m.ping(ctx, n)
				busyMu.Lock()
				delete(busy, n.name)
				busyMu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ping pings one backend and records the answer; a ping that outlasts
// PingTimeout and pingGrace is recorded as failed meanwhile.
func (m *Monitor) ping(ctx context.Context, n named) {
	pctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	var mu sync.Mutex
	returned := false
	overdue := time.AfterFunc(PingTimeout+pingGrace, func() {
		mu.Lock()
		defer mu.Unlock()
		if !returned {
			m.pinged(ctx, n.name, fmt.Errorf("no answer within %s", PingTimeout))
		}
	})
	defer overdue.Stop()
	err := n.b.Ping(pctx)
	mu.Lock()
	defer mu.Unlock()
	returned = true
	m.pinged(ctx, n.name, err)
}

// pinged records a ping's outcome, unless the monitor is stopping.
func (m *Monitor) pinged(ctx context.Context, name string, err error) {
	if ctx.Err() != nil {
		return
	}
	up, why := 1.0, ""
	if err != nil {
		up, why = 0, err.Error()
	}
	m.mu.Lock()
	m.pingErr[name] = why
	m.mu.Unlock()
	m.set.GetOrCreateGauge(series("registrator_backend_up", "backend", name), nil).Set(up)
}

// Ready reports whether the daemon is connected to Docker and to every
// backend and has finished a first full reconcile with each; reasons say
// what is missing.
func (m *Monitor) Ready() (bool, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var reasons []string
	if m.docker != "" {
		reasons = append(reasons, m.docker)
	}
	for _, n := range m.bridges {
		if e, pinged := m.pingErr[n.name]; !pinged {
			reasons = append(reasons, n.name+": not pinged yet")
		} else if e != "" {
			reasons = append(reasons, n.name+": unreachable: "+e)
		}
		if !n.b.Reconciled() {
			reasons = append(reasons, n.name+": first full reconcile not done")
		}
	}
	return len(reasons) == 0, reasons
}

// Handler serves /metrics, /health, /ready and /v1/services.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w) // go_* and process_*
		metrics.WriteFDMetrics(w)      // process_open_fds, process_max_fds
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		ready, reasons := m.Ready()
		if reasons == nil {
			reasons = []string{}
		}
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "reasons": reasons})
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, m.Services())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Server is the daemon's HTTP listener.
type Server struct {
	l      net.Listener
	srv    *http.Server
	log    *logrus.Entry
	serves string // for the log
}

// Listen opens addr for h, so that a misconfigured address is an error at
// start; Serve then serves it.
func Listen(addr string, h http.Handler, log *logrus.Entry) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{l: l, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, log: log,
		serves: "/metrics, /health, /ready and /v1/services"}, nil
}

// Serve serves until ctx is done, then shuts down (in-flight requests get
// 2 s) and returns nil; or returns the listener's error.
func (s *Server) Serve(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	s.log.WithField("addr", s.l.Addr().String()).Info("serving " + s.serves)
	err := s.srv.Serve(s.l)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	<-stopped
	return nil
}
