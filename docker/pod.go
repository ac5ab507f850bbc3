package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// Pod is what Podman's own API says of a container's pod. In a pod, the
// infra container holds the network namespace and so every port the pod
// publishes; the members show those ports as their own, each all of them.
type Pod struct {
	Name    string
	Infra   bool     // the container is the pod's infra container
	Members []string // the names of the pod's other containers, sorted
}

// errNoLibpod is libpod's answer from an engine that is not Podman.
var errNoLibpod = errors.New("not Podman")

// libpod reads path from Podman's own API (beside its Docker-compatible
// one, on the same socket) into v.
func libpod(ctx context.Context, api client.APIClient, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := api.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound && !strings.Contains(string(body), "no such") {
		return errNoLibpod // Docker's 404 for a path it does not serve
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("podman: GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// PodmanView completes what Podman's Docker-compatible inspection of c
// leaves out, from Podman's own API: it fills in the ports c's image
// exposes where Podman shows none (Podman 4.3 shows a pod member's and a
// --network host container's Config.ExposedPorts empty), and says which
// pod c belongs to. On an engine that is not Podman it returns c as it is
// and no pod.
func PodmanView(ctx context.Context, api client.APIClient, c container.InspectResponse) (container.InspectResponse, Pod, error) {
	if c.ContainerJSONBase == nil {
		return c, Pod{}, nil
	}
	var lc struct {
		IsInfra bool
		Pod     string
	}
	err := libpod(ctx, api, "containers/"+url.PathEscape(c.ID)+"/json", &lc)
	if errors.Is(err, errNoLibpod) {
		return c, Pod{}, nil
	}
	if err != nil {
		return c, Pod{}, err
	}
	// Only where Podman leaves them out: other containers show them.
	hostNet := c.HostConfig != nil && c.HostConfig.NetworkMode.IsHost()
	if (lc.Pod != "" && !lc.IsInfra || hostNet) && c.Config != nil && len(c.Config.ExposedPorts) == 0 {
		img, err := api.ImageInspect(ctx, c.Image)
		if err != nil {
			return c, Pod{}, fmt.Errorf("image of %.12s: %w", c.ID, err)
		}
		if img.Config != nil && len(img.Config.ExposedPorts) > 0 {
			cfg := *c.Config
			cfg.ExposedPorts = nat.PortSet{}
			for p := range img.Config.ExposedPorts {
				cfg.ExposedPorts[nat.Port(p)] = struct{}{}
			}
			c.Config = &cfg
		}
	}
	if lc.Pod == "" {
		return c, Pod{}, nil
	}
	var p struct {
		Name             string
		InfraContainerID string
		Containers       []struct{ ID, Name string }
	}
	if err := libpod(ctx, api, "pods/"+url.PathEscape(lc.Pod)+"/json", &p); err != nil {
		return c, Pod{}, err
	}
	out := Pod{Name: p.Name, Infra: lc.IsInfra}
	for _, m := range p.Containers {
		if m.ID != p.InfraContainerID && m.ID != c.ID {
			out.Members = append(out.Members, m.Name)
		}
	}
	slices.Sort(out.Members)
	return c, out, nil
}

// Claimed leaves, of the ports c shows (its pod's, when c is a member of a
// pod), those c claims: the ones it exposes (see PodmanView), and the ones
// its SERVICE_<port>_* keys name (also by range). The others are dropped,
// and the note says which. The rule looks at c alone, so that what c
// registers does not depend on which members the pod had when c was
// inspected.
func Claimed(c container.InspectResponse, p Pod) (container.InspectResponse, string) {
	return claimed(c, metadataOf(c), p)
}

// claimed is Claimed with c's metadata read already.
func claimed(c container.InspectResponse, md metadata, p Pod) (container.InspectResponse, string) {
	if p.Name == "" || p.Infra || c.NetworkSettings == nil {
		return c, ""
	}
	var exposed nat.PortSet
	if c.Config != nil {
		exposed = c.Config.ExposedPorts
	}
	ports := nat.PortMap{}
	var dropped []string
	for port, bindings := range c.NetworkSettings.Ports {
		if _, ok := exposed[port]; ok || md.forPort(port.Port(), port.Proto()).named() {
			ports[port] = bindings
		} else {
			dropped = append(dropped, string(port))
		}
	}
	if len(dropped) == 0 {
		return c, ""
	}
	slices.Sort(dropped)
	ns := *c.NetworkSettings
	ns.Ports = ports
	c.NetworkSettings = &ns
	return c, fmt.Sprintf("pod %s publishes %s, which this container neither exposes nor names in a SERVICE_<port>_* key: it leaves them to the pod's other members (%s); a port no member claims is registered by none",
		p.Name, strings.Join(dropped, ", "), members(p.Members))
}

func members(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
