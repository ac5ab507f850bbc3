package docker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/conntest"
)

// The bridge's workers inspect in parallel: the engine's client keeps a
// connection for each instead of closing one after a round of parallel
// calls and dialling again.
func TestParallelInspectionsKeepTheirConnections(t *testing.T) {
	const rounds = 20
	inspect := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/json") }
	srv := conntest.Start(t, true, bridge.DefaultWorkers, inspect, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		if !inspect(r) {
			return // the version negotiation's ping
		}
		id := strings.TrimSuffix(r.URL.Path[strings.LastIndex(r.URL.Path, "/containers/")+len("/containers/"):], "/json")
		fmt.Fprintf(w, `{"Id":%q,"Name":"/%s","State":{"Running":true},"Config":{},"HostConfig":{},"NetworkSettings":{}}`, id, id)
	}))
	t.Setenv("DOCKER_HOST", "unix://"+srv.Path())
	c, err := Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for r := range rounds {
		var wg sync.WaitGroup
		for w := range bridge.DefaultWorkers {
			wg.Go(func() {
				id := fmt.Sprintf("c%d-%d", r, w)
				got, err := c.ContainerInspect(context.Background(), id)
				if err != nil {
					t.Error(err)
				} else if got.ID != id {
					t.Errorf("inspected %q, got %q", id, got.ID)
				}
			})
		}
		wg.Wait()
	}
	// Without kept connections: 4, then two more each round (42).
	if got := srv.Opened(); got > bridge.IdleConns {
		t.Errorf("%d rounds of %d parallel inspections opened %d connections, want at most %d", rounds, bridge.DefaultWorkers, got, bridge.IdleConns)
	}
}
