package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// -container-filter: only the containers it selects are registered, at
// start and by events; one that leaves the selection (a network
// disconnect) loses its entries, one that enters it (a connect) gets them;
// SERVICE_IGNORE still applies to those it selects; the environment
// variable takes several; explain says why one is left out.
func TestContainerFilter(t *testing.T) {
	clean(t)
	network(t, "e2e-sel")
	run(t, "--name", "front-early", "--label", "tier=front", "-p", "127.0.0.1::80", imgSvc, "80")
	run(t, "--name", "back-early", "--label", "tier=back", "-p", "127.0.0.1::80", imgSvc, "80")
	launchEnv(t, []string{"REGISTRATOR_CONTAINER_FILTER=label=tier label=tier=front"}, []string{"consul://" + agent.Addr},
		"-container-filter", "network=e2e-sel", "-container-filter", "network=bridge").waitFor(t, "registrator started")
	expectIDs(t, id("front-early", "80"))

	run(t, "--name", "front-late", "--label", "tier=front", "-p", "127.0.0.1::80", imgSvc, "80")
	run(t, "--name", "front-ignored", "--label", "tier=front", "-e", "SERVICE_IGNORE=1", "-p", "127.0.0.1::80", imgSvc, "80")
	run(t, "--name", "unlabelled", "-p", "127.0.0.1::80", imgSvc, "80")
	// On e2e-sel only: selected by its network, left out once it leaves.
	run(t, "--name", "front-sel", "--label", "tier=front", "--network", "e2e-sel", "-p", "127.0.0.1::80", imgSvc, "80")
	// On a network the filter does not name: left out until it joins one.
	network(t, "e2e-other")
	run(t, "--name", "front-other", "--label", "tier=front", "--network", "e2e-other", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("front-early", "80"), id("front-late", "80"), id("front-sel", "80"))

	docker(t, "network", "connect", "e2e-sel", "front-other")
	docker(t, "network", "disconnect", "e2e-sel", "front-sel")
	expectIDs(t, id("front-early", "80"), id("front-late", "80"), id("front-other", "80"))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, daemonBin, "explain", "-container-filter", "label=tier=front", "back-early").CombinedOutput()
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	if want := "no services: -container-filter leaves it out (its label filter does not match: label=tier=front)"; !strings.Contains(string(out), want) {
		t.Errorf("explain output lacks %q:\n%s", want, out)
	}
}
