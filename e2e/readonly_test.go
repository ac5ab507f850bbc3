package e2e

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingProxy serves the Docker API on a Unix socket, forwarding every
// request to the real engine and recording its method and path.
type recordingProxy struct {
	mu       sync.Mutex
	requests []string      // "GET /v1.41/events"
	delay    time.Duration // before answering anything but the event stream
}

func (p *recordingProxy) setDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

func (p *recordingProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

func startRecordingProxy(t *testing.T) (socket string, p *recordingProxy) {
	t.Helper()
	p = &recordingProxy{}
	socket = filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	engine := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", "/var/run/docker.sock")
		}},
		FlushInterval: -1, // the event stream
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.Path)
		delay := p.delay
		p.mu.Unlock()
		if !strings.HasSuffix(r.URL.Path, "/events") {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		engine.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return socket, p
}

// The daemon needs only read access to the Docker API: through a proxy
// that records every request it sends, a full run (start, events,
// registrations, removal, resyncs) makes GET and HEAD requests only.
func TestDockerAPIReadOnly(t *testing.T) {
	clean(t)
	socket, proxy := startRecordingProxy(t)
	d := launchEnv(t, []string{"DOCKER_HOST=unix://" + socket}, []string{"consul://" + agent.Addr}, "-resync", "1")
	d.waitFor(t, "registrator started")
	run(t, "--name", "ro", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("ro", "80"))
	docker(t, "rm", "-f", "ro")
	expectIDs(t)

	seen := proxy.seen()
	var events, inspects bool
	for _, r := range seen {
		method, path, _ := strings.Cut(r, " ")
		if method != http.MethodGet && method != http.MethodHead {
			t.Errorf("the daemon sent %s: only GET and HEAD are expected", r)
		}
		events = events || strings.HasSuffix(path, "/events")
		inspects = inspects || strings.HasSuffix(path, "/json") && strings.Contains(path, "/containers/")
	}
	if !events || !inspects {
		t.Errorf("the proxy saw %v: no event stream or no inspection went through it", seen)
	}
	kinds := map[string]bool{}
	for _, r := range seen {
		method, path, _ := strings.Cut(r, " ")
		if i := strings.Index(path, "/containers/"); i >= 0 && !strings.HasSuffix(path, "/containers/json") {
			path = path[:i] + "/containers/<id>/json"
		}
		kinds[method+" "+path] = true
	}
	t.Logf("%d requests, of these kinds: %v", len(seen), slices.Sorted(maps.Keys(kinds)))
}
