package docker

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// libpodStandIn answers Podman's own API (libpod) with given bodies, and
// an image inspection with given exposed ports; the rest of the API is
// not there.
type libpodStandIn struct {
	client.APIClient
	container, pod []byte
	imagePorts     []string
}

func (a libpodStandIn) HTTPClient() *http.Client {
	return &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		body := a.container
		if strings.Contains(r.URL.Path, "/libpod/pods/") {
			body = a.pod
		}
		return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Body: io.NopCloser(strings.NewReader(string(body))), Request: r}, nil
	})}
}

func (a libpodStandIn) ImageInspect(context.Context, string, ...client.ImageInspectOption) (image.InspectResponse, error) {
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.ExposedPorts = map[string]struct{}{}
	for _, p := range a.imagePorts {
		cfg.ExposedPorts[p] = struct{}{}
	}
	return image.InspectResponse{Config: cfg}, nil
}

// FuzzEngineAnswers feeds what a manager answers about a Swarm service
// (any JSON, as the client decodes it into swarm.Service) to the
// derivation of its entries, and what Podman's own API answers about a
// container and its pod (any bytes) to PodmanView and to what a pod
// member claims. Neither may panic; every entry has an ID, a name and a
// port from 1 to 65535, a virtual IP's an IP address; a pod's members
// are sorted and never the container itself; a member claims no port
// its pod does not publish.
func FuzzEngineAnswers(f *testing.F) {
	f.Add([]byte(`{"ID":"s1","Spec":{"Name":"web","Labels":{"SERVICE_TAGS":"a"},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080}]}},"Endpoint":{"Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}],"VirtualIPs":[{"NetworkID":"n1","Addr":"10.0.1.5/24"}]}}`),
		"n1=front", []byte(`{"IsInfra":false,"Pod":"p1"}`), []byte(`{"Name":"pod","InfraContainerID":"i","Containers":[{"ID":"i","Name":"infra"},{"ID":"c1","Name":"me"},{"ID":"c2","Name":"b"},{"ID":"c3","Name":"a"}]}`), "80/tcp,9000/udp", "80/tcp")
	f.Add([]byte(`{"Spec":{"Name":"x","EndpointSpec":{"Mode":"dnsrr"}},"Endpoint":{"Ports":[{"TargetPort":4294967295,"PublishedPort":4294967295},{"TargetPort":1,"PublishedPort":70000,"Protocol":"sctp"}],"VirtualIPs":[{"NetworkID":"","Addr":"zz"},null]}}`),
		"=", []byte(`{"Pod":""}`), []byte(`null`), "", "")
	f.Add([]byte(`{"Spec":{"Labels":{"SERVICE_ID":"a/b","SERVICE_NAME":"","SERVICE_80_NAME":"x"}},"Endpoint":{"Ports":[{"TargetPort":80,"PublishedPort":0}]}}`),
		"n1=,n2=ingress", []byte(`{"Pod":"p","IsInfra":true}`), []byte(`{"Containers":[null,{"ID":"c1"}]}`), "80/tcp,80/tcp", "")
	f.Add([]byte(`null`), "", []byte(`{"Pod":"p"}`), []byte(`{"Containers":"x"}`), "not-a-port,/tcp,65536/udp", "1-3/tcp")
	f.Fuzz(func(t *testing.T, service []byte, networks string, libpodContainer, libpodPod []byte, published, exposed string) {
		var svc swarm.Service
		if json.Unmarshal(service, &svc) == nil {
			names := map[string]string{}
			for _, kv := range strings.Split(networks, ",") {
				id, name, _ := strings.Cut(kv, "=")
				names[id] = name
			}
			cfg := Config{Hostname: "node-1", HostAddr: "192.0.2.10"}
			vips, _ := serviceVIPs(svc, names, cfg)
			nodes, _ := serviceIngress(svc, cfg)
			_ = serviceFingerprint(svc)
			for _, p := range ingressPorts(svc) {
				if p.published < 1 || p.published > 65535 {
					t.Fatalf("%s: published port %d", service, p.published)
				}
			}
			for i, s := range slices.Concat(vips, nodes) {
				if s.ID == "" || s.Name == "" || s.Port < 1 || s.Port > 65535 {
					t.Fatalf("%s: entry %+v", service, s)
				}
				if i < len(vips) && !validIP(s.Address) {
					t.Fatalf("%s: virtual IP entry %+v", service, s)
				}
			}
		}

		c := container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{ID: "c1", Image: "img", HostConfig: &container.HostConfig{}},
			Config:            &container.Config{ExposedPorts: nat.PortSet{}},
			NetworkSettings:   &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{Ports: nat.PortMap{}}},
		}
		for _, p := range strings.Split(published, ",") {
			c.NetworkSettings.Ports[nat.Port(p)] = []nat.PortBinding{{HostIP: "0.0.0.0", HostPort: "1"}}
		}
		for _, p := range strings.Split(exposed, ",") {
			if p != "" {
				c.Config.ExposedPorts[nat.Port(p)] = struct{}{}
			}
		}
		api := libpodStandIn{container: libpodContainer, pod: libpodPod, imagePorts: strings.Split(exposed, ",")}
		view, pod, err := PodmanView(context.Background(), api, c)
		if err != nil {
			return
		}
		if !slices.IsSorted(pod.Members) {
			t.Fatalf("members %q not sorted", pod.Members)
		}
		var answer struct{ Containers []*struct{ ID, Name string } }
		_ = json.Unmarshal(libpodPod, &answer)
		if len(pod.Members) > len(answer.Containers) {
			t.Fatalf("%d members from %d containers", len(pod.Members), len(answer.Containers))
		}
		mine, _ := Claimed(view, pod)
		for p := range mine.NetworkSettings.Ports {
			if _, ok := c.NetworkSettings.Ports[p]; !ok {
				t.Fatalf("claims %s, which the pod does not publish", p)
			}
		}
	})
}

func validIP(s string) bool { return net.ParseIP(s) != nil }
