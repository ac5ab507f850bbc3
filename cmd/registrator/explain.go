package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/docker"
	"github.com/registrator/registrator/monitor"
)

// explainCommand is `registrator explain [options] <container>`: what the
// container yields with these options (and the REGISTRATOR_* environment,
// as the daemon reads it), or why it yields nothing. It writes nothing.
func explainCommand(args []string) int {
	noRegistry := func(k string) string {
		if k == envRegistry {
			return ""
		}
		return os.Getenv(k)
	}
	o, err := parseFlags(args, os.Stdout, noRegistry)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case err == nil && len(o.uris) != 1:
		err = errors.New("explain takes one container name or ID")
	case err != nil && strings.Contains(err.Error(), "missing registry URI"):
		err = errors.New("explain takes one container name or ID")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrator explain: %v\n", err)
		return exitMisconfigured
	}
	api, err := docker.Connect()
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrator explain: %v\n", err)
		return 1
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := api.ContainerInspect(ctx, o.uris[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrator explain: %v\n", err)
		return 1
	}
	cfg := deriveConfig(o, newLogger(o))
	c, pod, err := docker.PodmanView(ctx, api, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrator explain: %v\n", err)
		return 1
	}
	explain(os.Stdout, c, pod, cfg, o.selector)
	if o.httpAddr != "" {
		daemonSays(os.Stdout, o.httpAddr, c.ID)
	}
	return 0
}

// daemonSays prints what the daemon serving -http-addr on addr holds of
// the container: each service's state in each backend, with who holds an
// entry that is someone else's, or why a write fails.
func daemonSays(w io.Writer, addr, id string) {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + addr + "/v1/services")
	if err != nil {
		fmt.Fprintf(w, "  the daemon on %s: no answer (%v)\n", addr, err)
		return
	}
	defer resp.Body.Close()
	var all []monitor.Container
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&all); err != nil {
		fmt.Fprintf(w, "  the daemon on %s: /v1/services unreadable (%v)\n", addr, err)
		return
	}
	i := slices.IndexFunc(all, func(c monitor.Container) bool { return c.ID == id })
	if i < 0 {
		fmt.Fprintf(w, "  the daemon on %s holds no service of this container\n", addr)
		return
	}
	for _, s := range all[i].Services {
		for _, backend := range slices.Sorted(maps.Keys(s.Backends)) {
			st := s.Backends[backend]
			line := fmt.Sprintf("  the daemon: %s in %s: %s", s.ID, backend, st.State)
			if st.Error != "" {
				line += ": " + st.Error
			}
			fmt.Fprintln(w, line)
		}
	}
}

// explain prints what a container yields and why.
func explain(w io.Writer, c container.InspectResponse, pod docker.Pod, cfg docker.Config, sel docker.Selector) {
	name := strings.TrimPrefix(c.Name, "/")
	fmt.Fprintf(w, "container %s (%.12s)\n", name, c.ID)
	if ok, key := sel.Selects(c); !ok {
		fmt.Fprintf(w, "  no services: -container-filter leaves it out (its %s filter does not match: %s)\n", key, sel)
		return
	}
	if c.State == nil || !c.State.Running || c.State.Restarting {
		fmt.Fprintln(w, "  no services: the container is not running")
		return
	}
	if pod.Infra {
		fmt.Fprintf(w, "  no services: the infra container of pod %s; the pod's members register the ports it publishes\n", pod.Name)
		return
	}
	c, note := docker.Claimed(c, pod)
	decisions, warnings := docker.Explain(c, cfg)
	if len(decisions) == 0 {
		fmt.Fprintln(w, "  no services: the container exposes and publishes no port")
	}
	for _, d := range decisions {
		if d.Service == nil {
			fmt.Fprintf(w, "  %s: no service: %s\n", d.Port, d.Skipped)
		} else {
			describe(w, d.Port, *d.Service)
		}
		if len(d.Keys) > 0 {
			fmt.Fprintf(w, "    from: %s\n", strings.Join(d.Keys, ", "))
		}
	}
	for _, err := range warnings {
		fmt.Fprintf(w, "  warning: %v\n", err)
	}
	if note != "" {
		fmt.Fprintf(w, "  note: %s\n", note)
	}
}

func describe(w io.Writer, port string, s bridge.Service) {
	fmt.Fprintf(w, "  %s: service %q, ID %s, at %s:%d\n", port, s.Name, s.ID, s.Address, s.Port)
	if len(s.Tags) > 0 {
		fmt.Fprintf(w, "    tags: %s\n", strings.Join(s.Tags, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Meta)) {
		fmt.Fprintf(w, "    meta: %s=%s\n", k, s.Meta[k])
	}
	for _, c := range s.Checks {
		var what string
		switch {
		case c.HTTP != "":
			what = "http " + c.HTTP
		case c.TCP != "":
			what = "tcp " + c.TCP
		case c.GRPC != "":
			what = "grpc " + c.GRPC
		case c.TTL != "":
			what = "ttl " + c.TTL
		case len(c.Args) > 0:
			what = "script " + strings.Join(c.Args, " ")
		}
		fmt.Fprintf(w, "    check: %s\n", what)
	}
	if s.Health != nil {
		fmt.Fprintf(w, "    Docker health: %s (mirrored)\n", s.Health.Status)
	}
}
