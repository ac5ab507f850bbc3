package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"
)

// testdata/containers.json is an engine's answer to GET /containers/json?all=1
// (Docker 20.10.24): containers running with published and exposed ports,
// labels and a health check, one on a second network, one exited.
func engineList(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/containers.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeEngine answers the container list, and the ping the client's version
// negotiation sends.
func fakeEngine(t *testing.T, list []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/_ping":
			w.Header().Set("Api-Version", "1.41")
			_, _ = w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/containers/json") && r.URL.Query().Get("all") == "1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(list)
		default:
			t.Errorf("unexpected request %s", r.URL)
			http.NotFound(w, r)
		}
	})
}

// summaries hands out the list the way the client decodes it in full.
type summaries struct {
	client.APIClient
	list []container.Summary
}

func (s summaries) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return s.list, nil
}

// List decodes the engine's answer itself through Connect's transport; it
// must read what the client's full decoding reads.
func TestListReadsWhatTheFullDecodingReads(t *testing.T) {
	raw := engineList(t)
	srv := httptest.NewServer(fakeEngine(t, raw))
	defer srv.Close()
	c, err := client.NewClientWithOpts(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersionNegotiation(), rawBodies)
	if err != nil {
		t.Fatal(err)
	}
	lean := &Engine{API: c}
	got, err := lean.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !lean.listBuf.Got() {
		t.Fatal("the list was not read through the raw transport; the test would prove nothing")
	}

	var full []container.Summary
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	want, err := (&Engine{API: summaries{list: full}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lean list differs from the full one (-full +lean):\n%s", diff)
	}
	running := 0
	for _, c := range got {
		if c.Running {
			running++
		}
		if c.ID == "" || c.Name == "" || len(c.Fingerprint) != 24 {
			t.Errorf("incomplete entry %+v", c)
		}
	}
	if running == 0 || running == len(got) {
		t.Errorf("%d of %d running: the fixture should have both kinds", running, len(got))
	}
}

// Connect's transport hides the TLS configuration the client reads its
// scheme from; rawBodies must keep HTTPS.
func TestListOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(fakeEngine(t, engineList(t)))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := client.NewClientWithOpts(client.WithHTTPClient(hc), client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersionNegotiation(), rawBodies)
	if err != nil {
		t.Fatal(err)
	}
	s := &Engine{API: c}
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.listBuf.Got() || len(list) == 0 {
		t.Errorf("got %d containers, raw %v", len(list), s.listBuf.Got())
	}
}

func TestFingerprint(t *testing.T) {
	base := func() listed {
		var c listed
		c.ID = "abc"
		c.Names = []string{"/web"}
		c.Image = "nginx"
		c.State = "running"
		c.Status = "Up 3 minutes (healthy)"
		c.Ports = []container.Port{{IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {PrivatePort: 443, Type: "tcp"}, {IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}}
		c.Labels = map[string]string{"a": "1", "b": "2"}
		c.NetworkSettings.Networks = map[string]listedNetwork{
			"bridge": {IPAddress: "172.17.0.2"},
			"front":  {IPAddress: "10.1.0.2", GlobalIPv6Address: "fd00::2"},
		}
		return c
	}
	var f fingerprinter
	orig := base()
	want := f.sum(&orig)
	for _, tc := range []struct {
		name  string
		same  bool
		alter func(*listed)
	}{
		{"nothing", true, func(*listed) {}},
		{"port order", true, func(c *listed) { slices.Reverse(c.Ports) }},
		{"status text but health", true, func(c *listed) { c.Status = "Up 4 minutes (healthy)" }},
		{"health", false, func(c *listed) { c.Status = "Up 4 minutes (unhealthy)" }},
		{"name", false, func(c *listed) { c.Names = []string{"/web2"} }},
		{"image", false, func(c *listed) { c.Image = "nginx:2" }},
		{"state", false, func(c *listed) { c.State = "exited" }},
		{"published port", false, func(c *listed) { c.Ports[0].PublicPort = 8081 }},
		{"port gone", false, func(c *listed) { c.Ports = c.Ports[1:] }},
		{"label value", false, func(c *listed) { c.Labels["b"] = "3" }},
		{"label moved between key and value", false, func(c *listed) { c.Labels = map[string]string{"a": "1b", "": "2"} }},
		{"address", false, func(c *listed) {
			c.NetworkSettings.Networks["front"] = listedNetwork{IPAddress: "10.1.0.3", GlobalIPv6Address: "fd00::2"}
		}},
		{"network left", false, func(c *listed) { delete(c.NetworkSettings.Networks, "front") }},
	} {
		c := base()
		tc.alter(&c)
		if got := f.sum(&c); (got == want) != tc.same {
			t.Errorf("%s: fingerprint %s, unchanged one %s; want same=%v", tc.name, got, want, tc.same)
		}
	}
}

// List keeps the containers of the last list and decodes again only the
// elements that changed: a second list, with one container changed and one
// gone, must read exactly as a first reading of it does.
func TestListAgainReadsOnlyWhatChanged(t *testing.T) {
	var full []map[string]any
	if err := json.Unmarshal(engineList(t), &full); err != nil {
		t.Fatal(err)
	}
	if len(full) < 3 {
		t.Fatalf("the fixture has %d containers; the test needs 3", len(full))
	}
	var body atomic.Value
	set := func(list []map[string]any) {
		b, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		body.Store(b)
	}
	set(full)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fakeEngine(t, body.Load().([]byte)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	source := func() *Engine {
		c, err := client.NewClientWithOpts(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersionNegotiation(), rawBodies)
		if err != nil {
			t.Fatal(err)
		}
		return &Engine{API: c}
	}
	s := source()
	first, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("the same list read again differs (-first +again):\n%s", diff)
	}

	// The first container gets a label, the second goes.
	full[0]["Labels"] = map[string]any{"SERVICE_NAME": "renamed"}
	changed := append([]map[string]any{full[0]}, full[2:]...)
	set(changed)
	got, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := source().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the changed list read after the first differs from a fresh reading (-fresh +got):\n%s", diff)
	}
	if got[0].ID != first[0].ID || got[0].Fingerprint == first[0].Fingerprint {
		t.Errorf("the relabelled container kept its fingerprint %s", got[0].Fingerprint)
	}
	if len(got) != len(first)-1 || len(s.listed) != len(got) {
		t.Errorf("%d containers listed, %d kept, want %d", len(got), len(s.listed), len(first)-1)
	}
}

// A broken list is an error, not a partial list.
func TestListOfGarbage(t *testing.T) {
	for _, body := range []string{`{"message":"no"}`, `[{"Id":"a"},{"Id":1}]`, `[{"Id":"a"}`} {
		srv := httptest.NewServer(fakeEngine(t, []byte(body)))
		c, err := client.NewClientWithOpts(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersionNegotiation(), rawBodies)
		if err != nil {
			t.Fatal(err)
		}
		list, err := (&Engine{API: c}).List(context.Background())
		srv.Close()
		if err == nil || list != nil {
			t.Errorf("list of %s: %v, %v; want an error", body, list, err)
		}
	}
}

// BenchmarkListAgain is one resync's list of 500 unchanged containers
// (the fixture's, under new IDs) through Connect's transport: what
// -resync 1 pays each second in the steady state.
func BenchmarkListAgain(b *testing.B) {
	var fixture []map[string]any
	raw, err := os.ReadFile("testdata/containers.json")
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fixture); err != nil {
		b.Fatal(err)
	}
	var list []map[string]any
	for i := range 500 {
		c := maps.Clone(fixture[i%len(fixture)])
		c["Id"] = fmt.Sprintf("%064x", i)
		c["Names"] = []string{fmt.Sprintf("/c%d", i)}
		list = append(list, c)
	}
	body, err := json.Marshal(list)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			w.Header().Set("Api-Version", "1.41")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c, err := client.NewClientWithOpts(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersionNegotiation(), rawBodies)
	if err != nil {
		b.Fatal(err)
	}
	s := &Engine{API: c}
	if _, err := s.List(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.List(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
