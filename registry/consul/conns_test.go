package consul

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/conntest"
	"github.com/registrator/registrator/registry/registrytest"
)

// The bridge's workers register in parallel: the backend keeps a
// connection for each, over TCP and over a unix socket, instead of
// closing one after a round of parallel calls and dialling again.
func TestParallelWritesKeepTheirConnections(t *testing.T) {
	const rounds = 20
	for _, unix := range []bool{false, true} {
		t.Run(fmt.Sprintf("unix=%v", unix), func(t *testing.T) {
			srv := conntest.Start(t, unix, bridge.DefaultWorkers,
				func(r *http.Request) bool { return r.URL.Path == "/v1/agent/service/register" },
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodGet { // Register reads the ID first: free
						http.NotFound(w, r)
					}
				}))
			uri := "consul://" + srv.Path()
			if unix {
				uri = "consul-unix://" + srv.Path()
			}
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(u, bridge.BackendOptions{Log: registrytest.Quiet()})
			if err != nil {
				t.Fatal(err)
			}
			for r := range rounds {
				var wg sync.WaitGroup
				for w := range bridge.DefaultWorkers {
					wg.Go(func() {
						s := bridge.Service{ID: fmt.Sprintf("h:c%d-%d:80", r, w), Name: "web", Port: 80, Address: "10.0.0.1"}
						if err := b.Register(context.Background(), s); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			// Without kept connections: 4, then one more each round (23 over TCP;
			// 80 over a unix socket, one a call).
			if got := srv.Opened(); got > bridge.IdleConns {
				t.Errorf("%d rounds of %d parallel registrations opened %d connections, want at most %d", rounds, bridge.DefaultWorkers, got, bridge.IdleConns)
			}
		})
	}
}
