package monitor

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

func TestServerServesUntilItsContextEnds(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := New()
	srv, err := Listen("127.0.0.1:0", m.Handler(), logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	base := "http://" + srv.l.Addr().String()
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %s", resp.Status)
	}
	resp, err = http.Get(base + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not connected to the Docker event stream") {
		t.Fatalf("/ready before the event stream: %s %s", resp.Status, body)
	}
	m.DockerConnected()
	resp, err = http.Get(base + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/ready with the stream and no backend: %s", resp.Status)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after its context ended: %v", err)
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Fatal("still serving after Serve returned")
	}
}

func TestListenRefusesAnAddressInUse(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := Listen("127.0.0.1:0", New().Handler(), logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.l.Close()
	if _, err := Listen(srv.l.Addr().String(), New().Handler(), logrus.NewEntry(log)); err == nil {
		t.Fatal("a second Listen on the same address succeeded")
	}
}

// The exposition parses as Prometheus parses it, each series under its
// family and type, label values escaped, with the process's own metrics.
func TestMetricsParseWithTheirLabelsAndTypes(t *testing.T) {
	m := New()
	backend := `consul://a"b\c` + "\n"
	o := m.Observer(backend)
	m.Event("container", "start")
	m.Event("container", "start")
	o.Wrote("register", 3*time.Millisecond, nil)
	o.Wrote("register", 5*time.Millisecond, errors.New("refused"))
	o.Reconciled(time.Second, nil, 2, 0)
	o.Synced(20 * time.Millisecond)
	m.DockerConnected()

	r := httptest.NewRecorder()
	m.Handler().ServeHTTP(r, httptest.NewRequest("GET", "/metrics", nil))
	if ct := r.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, typ dto.MetricType, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil || f.GetType() != typ {
			t.Fatalf("%s: family %v", name, f)
		}
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if !maps.Equal(got, labels) {
				continue
			}
			switch typ {
			case dto.MetricType_COUNTER:
				return s.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return s.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(s.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("%s: no series %v in %v", name, labels, f.GetMetric())
		return 0
	}
	for _, c := range []struct {
		name   string
		typ    dto.MetricType
		labels map[string]string
		want   float64
	}{
		{"registrator_events_total", dto.MetricType_COUNTER, map[string]string{"type": "container", "action": "start"}, 2},
		{"registrator_writes_total", dto.MetricType_COUNTER, map[string]string{"backend": backend, "action": "register", "result": "ok"}, 1},
		{"registrator_writes_total", dto.MetricType_COUNTER, map[string]string{"backend": backend, "action": "register", "result": "error"}, 1},
		{"registrator_write_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"backend": backend, "action": "register"}, 2},
		{"registrator_reconciles_total", dto.MetricType_COUNTER, map[string]string{"backend": backend, "result": "ok"}, 1},
		{"registrator_reconcile_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"backend": backend}, 1},
		{"registrator_drift_repaired_total", dto.MetricType_COUNTER, map[string]string{"backend": backend, "kind": "missing"}, 2},
		{"registrator_event_to_registry_seconds", dto.MetricType_HISTOGRAM, map[string]string{"backend": backend}, 1},
		{"registrator_docker_up", dto.MetricType_GAUGE, map[string]string{}, 1},
		{"registrator_event_stream_reconnects_total", dto.MetricType_COUNTER, map[string]string{}, 0},
		{"registrator_containers", dto.MetricType_GAUGE, map[string]string{}, 0},
	} {
		if got := value(c.name, c.typ, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := fams["registrator_write_duration_seconds"].GetMetric()[0].GetHistogram()
	if b := h.GetBucket(); len(b) != 17 /* with +Inf */ || b[0].GetUpperBound() != 0.0005 || b[3].GetCumulativeCount() != 1 || b[4].GetCumulativeCount() != 2 {
		t.Errorf("write duration buckets: %v", b)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// stubBackend answers Ping with ping(ctx); it holds nothing.
type stubBackend struct{ ping func(context.Context) error }

func (s stubBackend) Services(context.Context) ([]bridge.Service, error) { return nil, nil }
func (s stubBackend) Register(context.Context, bridge.Service) error     { return nil }
func (s stubBackend) Deregister(context.Context, bridge.Service) error   { return nil }
func (s stubBackend) Ping(ctx context.Context) error                     { return s.ping(ctx) }
func (s stubBackend) Close() error                                       { return nil }

// A backend whose ping hangs, heeding no context, holds up neither the
// other backend's ping nor /ready, and is reported unreachable itself.
func TestOneHungBackendHoldsUpNoOther(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	release := make(chan struct{})
	defer close(release)
	hung := stubBackend{func(context.Context) error { <-release; return nil }}
	fine := stubBackend{func(context.Context) error { return nil }}
	m := New()
	m.DockerConnected()
	m.Add("hung://", bridge.New(nil, hung, bridge.Config{}, logrus.NewEntry(log))) // first: pinged first
	m.Add("fine://", bridge.New(nil, fine, bridge.Config{}, logrus.NewEntry(log)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)

	reasons := func() string {
		done := make(chan []string, 1)
		go func() { _, r := m.Ready(); done <- r }()
		select {
		case r := <-done:
			return strings.Join(r, "; ")
		case <-time.After(time.Second):
			t.Fatal("Ready did not answer within a second")
			return ""
		}
	}
	deadline := time.Now().Add(time.Second)
	for strings.Contains(reasons(), "fine://: not pinged yet") {
		if time.Now().After(deadline) {
			t.Fatalf("the fine backend not pinged within a second while the other hangs: %s", reasons())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := reasons(); strings.Contains(r, "fine://: unreachable") {
		t.Fatalf("the fine backend reported unreachable: %s", r)
	}
	deadline = time.Now().Add(PingTimeout + pingGrace + time.Second)
	for !strings.Contains(reasons(), "hung://: unreachable: no answer within 2s") {
		if time.Now().After(deadline) {
			t.Fatalf("the hung backend not reported unreachable in time: %s", reasons())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := reasons(); strings.Contains(r, "fine://") && !strings.Contains(r, "fine://: first full reconcile not done") {
		t.Fatalf("the fine backend's state: %s", r)
	}
}
