package docker

import (
	"fmt"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// wide is a container that publishes ports 10000..10000+n-1, with env.
func wide(n int, env []string) container.InspectResponse {
	exposed, ports := nat.PortSet{}, nat.PortMap{}
	for i := range n {
		p := nat.Port(fmt.Sprintf("%d/udp", 10000+i))
		exposed[p] = struct{}{}
		ports[p] = []nat.PortBinding{{HostIP: "0.0.0.0", HostPort: fmt.Sprint(10000 + i)}}
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: containerID, Name: "/rtp.1", Image: otherImageID,
			State: &container.State{Running: true}},
		Config:          &container.Config{Image: "rtp", Env: env, ExposedPorts: exposed},
		NetworkSettings: &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{Ports: ports}},
	}
}

// The cost per port of deriving the services of 1000 published ports:
// named by one range key, by 1000 per-port keys, and as 1000 containers
// of one port each (ns/port is the figure to compare).
func BenchmarkServicesPerPort(b *testing.B) {
	const n = 1000
	cfg := Config{Hostname: "host", HostAddr: hostAddr}
	perPort := make([]string, n)
	for i := range n {
		perPort[i] = fmt.Sprintf("SERVICE_%d_NAME=rtp", 10000+i)
	}
	single := make([]container.InspectResponse, n)
	for i := range n {
		c := wide(1, []string{"SERVICE_NAME=rtp"})
		p := nat.Port(fmt.Sprintf("%d/udp", 10000+i))
		c.Config.ExposedPorts = nat.PortSet{p: {}}
		c.NetworkSettings.Ports = nat.PortMap{p: {{HostIP: "0.0.0.0", HostPort: fmt.Sprint(10000 + i)}}}
		single[i] = c
	}
	for _, bc := range []struct {
		name string
		cs   []container.InspectResponse
	}{
		{"one container, a range key", []container.InspectResponse{wide(n, []string{fmt.Sprintf("SERVICE_10000-%d_NAME=rtp", 10000+n-1)})}},
		{"one container, 1000 per-port keys", []container.InspectResponse{wide(n, perPort)}},
		{"1000 containers of one port", single},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				got := 0
				for _, c := range bc.cs {
					s, _ := Services(c, cfg)
					got += len(s)
				}
				if got != n {
					b.Fatalf("%d services, want %d", got, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/port")
		})
	}
}
