package docker

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

func TestClaimedPortsOfAPodMember(t *testing.T) {
	podPorts := nat.PortMap{
		"80/tcp": {{HostIP: "127.0.0.1", HostPort: "18081"}},
		"81/tcp": {{HostIP: "127.0.0.1", HostPort: "18082"}},
		"53/udp": {{HostIP: "127.0.0.1", HostPort: "18053"}},
	}
	member := func(env []string, exposed ...nat.Port) container.InspectResponse {
		c := container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{Name: "/m"},
			Config:            &container.Config{Env: env, ExposedPorts: nat.PortSet{}},
			NetworkSettings:   &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{Ports: podPorts}},
		}
		for _, p := range exposed {
			c.Config.ExposedPorts[p] = struct{}{}
		}
		return c
	}
	two := Pod{Name: "shop", Members: []string{"sidecar"}}
	for _, tc := range []struct {
		name    string
		c       container.InspectResponse
		pod     Pod
		want    []string
		warning string
	}{
		{"in no pod: every port", member(nil), Pod{}, []string{"53/udp", "80/tcp", "81/tcp"}, ""},
		{"the pod's only member claims what it exposes", member(nil, "80/tcp"), Pod{Name: "shop"}, []string{"80/tcp"}, "53/udp, 81/tcp"},
		{"exposes one", member(nil, "80/tcp"), two, []string{"80/tcp"}, "53/udp, 81/tcp"},
		{"names one", member([]string{"SERVICE_81_NAME=api"}), two, []string{"81/tcp"}, "53/udp, 80/tcp"},
		{"names one with its protocol", member([]string{"SERVICE_53_udp_NAME=dns"}), two, []string{"53/udp"}, "80/tcp, 81/tcp"},
		{"a range", member([]string{"SERVICE_80-81_TAGS=web"}), two, []string{"80/tcp", "81/tcp"}, "53/udp"},
		{"a container-wide key claims nothing", member([]string{"SERVICE_NAME=x"}), two, nil, "53/udp, 80/tcp, 81/tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, note := Claimed(tc.c, tc.pod)
			var ports []string
			for p := range got.NetworkSettings.Ports {
				ports = append(ports, string(p))
			}
			slices.Sort(ports)
			if !slices.Equal(ports, tc.want) {
				t.Errorf("ports %v, want %v", ports, tc.want)
			}
			switch {
			case tc.warning == "" && note != "":
				t.Errorf("note %q, want none", note)
			case tc.warning != "" && (!strings.Contains(note, "publishes "+tc.warning+",") || !strings.Contains(note, "("+members(tc.pod.Members)+")")):
				t.Errorf("note %q, want one naming %s and the other member", note, tc.warning)
			}
			if len(tc.c.NetworkSettings.Ports) != 3 {
				t.Error("the inspected container was changed")
			}
		})
	}
}
