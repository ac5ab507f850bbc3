package main

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/registrator/registrator/docker"
)

func TestExplainOutput(t *testing.T) {
	c := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: "0123456789abcdef", Name: "/web.1",
			State: &container.State{Running: true, Health: &container.Health{Status: "healthy"}}},
		Config: &container.Config{Image: "web", Env: []string{"SERVICE_TAGS=a,b", "SERVICE_TEAM=core", "SERVICE_CHECK_TCP=1", "SERVICE_CHECK_INTERVAL=soon"},
			ExposedPorts: nat.PortSet{"80/tcp": {}, "9000/tcp": {}}},
		NetworkSettings: &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{Ports: nat.PortMap{
			"80/tcp": {{HostIP: "0.0.0.0", HostPort: "8000"}}, "9000/tcp": nil}}},
	}
	var b strings.Builder
	explain(&b, c, docker.Pod{}, docker.Config{Hostname: "host", HostIP: "10.0.0.5"}, docker.Selector{})
	for _, want := range []string{
		"container web.1 (0123456789ab)",
		`80/tcp: service "web", ID host:web.1:80, at 10.0.0.5:8000`,
		"tags: a, b",
		"meta: team=core",
		"check: tcp 10.0.0.5:8000",
		"Docker health: healthy (mirrored)",
		"9000/tcp: no service: exposed but not published",
		"warning: SERVICE_CHECK_INTERVAL (4 bytes): not a positive duration",
		"from: SERVICE_CHECK_INTERVAL=soon, SERVICE_CHECK_TCP=1, SERVICE_TAGS=a,b, SERVICE_TEAM=core",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	c.State.Running = false
	explain(&b, c, docker.Pod{}, docker.Config{Hostname: "host"}, docker.Selector{})
	if !strings.Contains(b.String(), "no services: the container is not running") {
		t.Errorf("stopped container:\n%s", b.String())
	}
	b.Reset()
	c.State.Running = true
	c.Config.ExposedPorts, c.NetworkSettings.Ports = nil, nil
	explain(&b, c, docker.Pod{}, docker.Config{Hostname: "host"}, docker.Selector{})
	if !strings.Contains(b.String(), "no services: the container exposes and publishes no port") {
		t.Errorf("container without ports:\n%s", b.String())
	}
	b.Reset()
	sel, err := docker.ParseSelector([]string{"label=tier=front"})
	if err != nil {
		t.Fatal(err)
	}
	explain(&b, c, docker.Pod{}, docker.Config{Hostname: "host"}, sel)
	if !strings.Contains(b.String(), "no services: -container-filter leaves it out (its label filter does not match: label=tier=front)") {
		t.Errorf("container left out by -container-filter:\n%s", b.String())
	}
}
