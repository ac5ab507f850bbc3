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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

// PingEvery is how often every backend is pinged for /ready and the
// registrator_backend_up metric.
const PingEvery = 5 * time.Second

// Monitor collects metrics and state. Create it with New, add each
// backend's bridge with Add, feed it Docker's events, and run it with Run.
type Monitor struct {
	reg          *prometheus.Registry
	events       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	reconciles   *prometheus.CounterVec
	reconcileDur *prometheus.HistogramVec
	writes       *prometheus.CounterVec
	writeDur     *prometheus.HistogramVec
	repaired     *prometheus.CounterVec
	up           *prometheus.GaugeVec
	reconnects   prometheus.Counter
	dockerUp     prometheus.Gauge

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

// New returns a monitor with every metric registered.
func New() *Monitor {
	m := &Monitor{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "registrator_events_total", Help: "Docker events received, by type and action.",
		}, []string{"type", "action"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "registrator_event_to_registry_seconds",
			Help:    "Time from receiving a container's event to its services being in the backend.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"backend"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "registrator_reconciles_total", Help: "Full reconcile passes, by backend and result (ok or error).",
		}, []string{"backend", "result"}),
		reconcileDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "registrator_reconcile_duration_seconds",
			Help:    "Duration of full reconcile passes: listing containers and reading the backend.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"backend"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "registrator_writes_total", Help: "Writes to a backend, by action (register or deregister) and result (ok or error).",
		}, []string{"backend", "action", "result"}),
		writeDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "registrator_write_duration_seconds",
			Help:    "Time the backend took to answer a write, by action (register or deregister).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"backend", "action"}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "registrator_drift_repaired_total",
			Help: "Entries a full reconcile found missing from a backend (kind=missing, written again) or left in it (kind=stale, removed).",
		}, []string{"backend", "kind"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "registrator_backend_up", Help: "1 if the backend answered its last ping, else 0.",
		}, []string{"backend"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "registrator_event_stream_reconnects_total", Help: "Times the Docker event stream broke and was established again.",
		}),
		dockerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "registrator_docker_up", Help: "1 while the Docker event stream is established, else 0.",
		}),
		docker:  "not connected to the Docker event stream yet",
		pingErr: map[string]string{},
	}
	m.reg.MustRegister(m.events, m.latency, m.reconciles, m.reconcileDur, m.writes, m.writeDur, m.repaired, m.up,
		m.reconnects, m.dockerUp, stateCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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
	o.m.reconciles.WithLabelValues(o.name, result(err)).Inc()
	o.m.reconcileDur.WithLabelValues(o.name).Observe(took.Seconds())
	if err == nil {
		o.m.repaired.WithLabelValues(o.name, "missing").Add(float64(missing))
		o.m.repaired.WithLabelValues(o.name, "stale").Add(float64(stale))
	}
}

func (o observer) Wrote(action string, took time.Duration, err error) {
	o.m.writes.WithLabelValues(o.name, action, result(err)).Inc()
	o.m.writeDur.WithLabelValues(o.name, action).Observe(took.Seconds())
}

func (o observer) Synced(took time.Duration) {
	o.m.latency.WithLabelValues(o.name).Observe(took.Seconds())
}

// Event counts a Docker event.
func (m *Monitor) Event(typ, action string) { m.events.WithLabelValues(typ, action).Inc() }

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

// Run pings every backend now and every PingEvery until ctx is done, for
// /ready and registrator_backend_up: run it only where something serves them.
func (m *Monitor) Run(ctx context.Context) {
	tick := time.NewTicker(PingEvery)
	defer tick.Stop()
	for {
		m.mu.Lock()
		bridges := slices.Clone(m.bridges)
		m.mu.Unlock()
		for _, n := range bridges {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := n.b.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			up, why := 1.0, ""
			if err != nil {
				up, why = 0, err.Error()
			}
			m.mu.Lock()
			m.pingErr[n.name] = why
			m.mu.Unlock()
			m.up.WithLabelValues(n.name).Set(up)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
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
	l   net.Listener
	srv *http.Server
	log *logrus.Entry
}

// Listen opens addr for h, so that a misconfigured address is an error at
// start; Serve then serves it.
func Listen(addr string, h http.Handler, log *logrus.Entry) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{l: l, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, log: log}, nil
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
	s.log.WithField("addr", s.l.Addr().String()).Info("serving /metrics, /health, /ready and /v1/services")
	err := s.srv.Serve(s.l)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	<-stopped
	return nil
}
