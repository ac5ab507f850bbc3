package monitor

import (
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/VictoriaMetrics/metrics"

	"github.com/registrator/registrator/bridge"
)

// Container is one container in /v1/services.
type Container struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Services []Service `json:"services"`
}

// Service is one service of a container and its state in each backend.
type Service struct {
	ID       string                  `json:"id"`
	Name     string                  `json:"name"`
	Address  string                  `json:"address"`
	Port     int                     `json:"port"`
	Tags     []string                `json:"tags,omitempty"`
	Backends map[string]BackendState `json:"backends"`
}

// BackendState is a service's state in one backend: "in sync", "pending"
// (queued or being written), "failing" (retried; Error says why) or "held"
// (someone else holds the entry; Error says who).
type BackendState struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// Services is what this host registers, per container, sorted by
// container and service ID.
func (m *Monitor) Services() []Container {
	m.mu.Lock()
	bridges := slices.Clone(m.bridges)
	m.mu.Unlock()
	byID := map[string]*Container{}
	services := map[string]map[string]*Service{} // container → service ID
	for _, n := range bridges {
		for _, cs := range n.b.Status() {
			c := byID[cs.ID]
			if c == nil {
				c = &Container{ID: cs.ID, Name: cs.Name}
				byID[cs.ID] = c
				services[cs.ID] = map[string]*Service{}
			}
			for _, st := range cs.Services {
				s := services[cs.ID][st.Service.ID]
				if s == nil {
					s = &Service{ID: st.Service.ID, Name: st.Service.Name, Address: st.Service.Address,
						Port: st.Service.Port, Tags: st.Service.Tags, Backends: map[string]BackendState{}}
					services[cs.ID][st.Service.ID] = s
				}
				s.Backends[n.name] = BackendState{State: st.State, Error: st.Error}
			}
		}
	}
	out := []Container{}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		c := byID[id]
		for _, sid := range slices.Sorted(maps.Keys(services[id])) {
			c.Services = append(c.Services, *services[id][sid])
		}
		out = append(out, *c)
	}
	return out
}

// writeState writes the gauges of what is known at scrape time.
func (m *Monitor) writeState(w io.Writer) {
	m.mu.Lock()
	bridges := slices.Clone(m.bridges)
	m.mu.Unlock()
	containers := map[string]bool{}
	if len(bridges) > 0 {
		metrics.WriteMetadataIfNeeded(w, "registrator_services", "gauge")
	}
	for _, n := range bridges {
		count := map[string]int{bridge.InSync: 0, bridge.Pending: 0, bridge.Failing: 0, bridge.Held: 0}
		for _, cs := range n.b.Status() {
			containers[cs.ID] = true
			for _, s := range cs.Services {
				count[s.State]++
			}
		}
		for _, state := range slices.Sorted(maps.Keys(count)) {
			fmt.Fprintf(w, "%s %d\n", series("registrator_services", "backend", n.name, "state", state), count[state])
		}
	}
	metrics.WriteGaugeUint64(w, "registrator_containers", uint64(len(containers)))
}
