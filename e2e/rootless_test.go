package e2e

import (
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// rootlessUser runs the rootless Podman that `make setup` starts, its
// service on /run/user/<uid>/podman/podman.sock.
const rootlessUser = "registrator-rootless"

// rootless is that user's Podman.
type rootless struct {
	uid, gid   int
	home, run  string // its home, its XDG_RUNTIME_DIR
	socket     string
	daemonPath string // a copy of the daemon that user may run
}

var rootlessImages sync.Once

// rootlessReady checks the user's service, moves the test image into its
// store once, and removes the test's containers before and after.
func rootlessReady(t *testing.T) *rootless {
	t.Helper()
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		t.Fatalf("no user %s (run `make setup`): %v", rootlessUser, err)
	}
	rl := &rootless{home: u.HomeDir, run: "/run/user/" + u.Uid}
	rl.uid, _ = strconv.Atoi(u.Uid)
	rl.gid, _ = strconv.Atoi(u.Gid)
	rl.socket = rl.run + "/podman/podman.sock"
	if out, err := exec.Command("curl", "-sf", "--unix-socket", rl.socket, "http://podman/_ping").CombinedOutput(); err != nil {
		t.Fatalf("no rootless Podman service on %s (run `make setup`): %v %s", rl.socket, err, out)
	}
	rootlessImages.Do(func() { rl.load(t, imgSvc) })
	rl.removeContainers()
	t.Cleanup(rl.removeContainers)

	dir, err := os.MkdirTemp("", "registrator-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rl.daemonPath = filepath.Join(dir, "registrator")
	if err := copyFile(daemonBin, rl.daemonPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return rl
}

// load moves Docker's images into the user's Podman store.
func (rl *rootless) load(t *testing.T, images ...string) {
	t.Helper()
	dockerSaveInto(t, rl.command("podman", "load", "-q"), images...)
}

// dockerSaveInto runs load (a podman load) on what docker save writes of
// images.
func dockerSaveInto(t *testing.T, load *exec.Cmd, images ...string) {
	t.Helper()
	save := exec.Command("docker", append([]string{"save"}, images...)...)
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("docker save | %s: %v\n%s", strings.Join(load.Args, " "), err, out)
	}
	if err := save.Wait(); err != nil {
		t.Fatalf("docker save: %v", err)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// command is name run as the user, in its home, with its environment.
func (rl *rootless) command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	rl.as(c)
	return c
}

// as makes c run as the user, with its HOME and XDG_RUNTIME_DIR and
// without DOCKER_HOST.
func (rl *rootless) as(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(rl.uid), Gid: uint32(rl.gid)}}
	c.Dir = rl.home
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	c.Env = append(slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, "DOCKER_HOST=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=")
	}), "HOME="+rl.home, "XDG_RUNTIME_DIR="+rl.run)
}

// podman runs the user's podman and returns its trimmed output.
func (rl *rootless) podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := rl.command("podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s (as %s): %v\n%s", strings.Join(args, " "), rootlessUser, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (rl *rootless) removeContainers() {
	out, _ := rl.command("podman", "ps", "-aq", "--filter", "label="+label).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = rl.command("podman", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// daemon runs registrator as the user, without DOCKER_HOST: it finds the
// user's socket itself.
func (rl *rootless) daemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := launchCmd(t, rl.daemonPath, rl.as, nil, []string{"consul://" + agent.Addr}, args...)
	d.waitFor(t, "registrator started")
	return d
}

// Rootless Podman: its containers have no address of their own (network
// mode slirp4netns), so what is registered is where the host publishes
// each port: its bind address, else the host's address (the host name's,
// or -ip); -internal does the same and says why, and skips a port that is
// not published. The daemon, run as the user without DOCKER_HOST, passes
// over the sockets that user is denied (Docker's, rootful Podman's) and
// finds the user's own. Its entries carry a mark of their own
// (podman-rootless-<uid>@<host>): a daemon on the same host's rootful
// Podman never takes them for its own stale entries.
func TestPodmanRootless(t *testing.T) {
	clean(t)
	podmanReady(t)
	rl := rootlessReady(t)
	hostAddr := ""
	if ips, err := net.LookupIP(host); err == nil {
		for _, ip := range ips {
			if ip.To4() != nil {
				hostAddr = ip.String()
				break
			}
		}
	}
	web, api := freePort(t), freePort(t)
	rl.podman(t, "run", "-d", "--name", "e2e-rootless", "--label", label+"=1",
		"-p", "127.0.0.1:"+strconv.Itoa(web)+":80", "-p", strconv.Itoa(api)+":81", "--expose", "82", imgSvc, "80")
	if ip := rl.podman(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}|{{.HostConfig.NetworkMode}}", "e2e-rootless"); ip != "|slirp4netns" {
		t.Fatalf("the rootless container's address and network mode: %q, want none and slirp4netns", ip)
	}
	want := func(apiAddr string) map[string]svc {
		return map[string]svc{
			id("e2e-rootless", "80"): {Name: "svc-80", Address: "127.0.0.1", Port: web},
			id("e2e-rootless", "81"): {Name: "svc-81", Address: apiAddr, Port: api},
		}
	}

	d := rl.daemon(t)
	d.waitFor(t, `engine="Podman Engine 4.`)
	d.waitFor(t, `socket="unix://`+rl.socket+`"`)
	expect(t, want(hostAddr))
	mark := "podman-rootless-" + strconv.Itoa(rl.uid) + "@" + host
	all, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"80", "81"} {
		if owner := all[id("e2e-rootless", p)].Meta["registrator-owner"]; owner != mark {
			t.Errorf("port %s: owner mark %q, want %s", p, owner, mark)
		}
	}

	// The rootful Podman's daemon on the same host: its full passes leave
	// the rootless entries alone (they once shared the mark podman@<host>,
	// and it removed them as its own stale entries).
	rootful := launchEnv(t, []string{"DOCKER_HOST=unix://" + podmanSocket}, []string{"consul://" + agent.Addr}, "-resync", "1")
	rootful.waitFor(t, "registrator started")
	rootful.waitPasses(t, 2)
	got, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	for sid := range want(hostAddr) {
		if _, ok := got[sid]; !ok {
			t.Errorf("%s gone after the rootful Podman's daemon's full passes", sid)
		}
	}
	if err := rootful.stop(); err != nil {
		t.Error(err)
	}
	rootful.killed = true // stopped here

	if err := d.stop(); err != nil {
		t.Error(err)
	}
	d.killed = true
	d = rl.daemon(t, "-internal")
	expect(t, want(hostAddr))
	d.waitFor(t, `-internal: the container has no address of its own (network mode \"slirp4netns\"): registered where the host publishes it`)
	if err := d.stop(); err != nil {
		t.Error(err)
	}
	d.killed = true

	rl.daemon(t, "-ip", "127.0.0.1")
	expect(t, want("127.0.0.1"))
	rl.podman(t, "stop", "-t", "1", "e2e-rootless")
	expectIDs(t)
}

// The image, run by the rootless user as a container of its own Podman
// (host network, the user's socket at /tmp/docker.sock): it registers
// that user's containers with the user's mark.
func TestPodmanRootlessImage(t *testing.T) {
	clean(t)
	rl := rootlessReady(t)
	image := buildImage(t)
	rl.load(t, image)
	reg := rl.podman(t, "run", "-d", "--name", "registrator-rootless-under-test", "--label", label+"=1", "--net", "host",
		"-v", rl.socket+":/tmp/docker.sock", image, "-ip", "127.0.0.1", "consul://"+agent.Addr)
	web := freePort(t)
	rl.podman(t, "run", "-d", "--name", "e2e-rootless-web", "--label", label+"=1", "-p", pub(web, "80"), imgSvc, "80")
	expect(t, map[string]svc{id("e2e-rootless-web", "80"): {Name: "svc", Address: "127.0.0.1", Port: web}})
	all, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if owner, want := all[id("e2e-rootless-web", "80")].Meta["registrator-owner"], "podman-rootless-"+strconv.Itoa(rl.uid)+"@"+host; owner != want {
		t.Errorf("owner mark %q, want %s", owner, want)
	}
	rl.podman(t, "rm", "-f", "e2e-rootless-web")
	expect(t, map[string]svc{})
	if t.Failed() {
		t.Logf("registrator container log:\n%s", rl.podman(t, "logs", reg))
	}
}
