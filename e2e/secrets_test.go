package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The credentials the daemon is given: an etcd user and password in the
// URI (the password with a / in it, percent-encoded), and Consul's HTTP
// basic authentication in CONSUL_HTTP_AUTH. The e2e etcd has no
// authentication: the client still sends them, and carries on when the
// server says authentication is off; Consul ignores the header.
const (
	secretUser     = "e2e-bob"
	secretPassword = "S3cr/et-Zq9"
	basicAuth      = "e2e-carol:Xy7-basic"
)

// secretURI is an etcd URI with the user and password, for this prefix.
func secretURI(addr, prefix string) string {
	return "etcd://" + secretUser + ":" + strings.ReplaceAll(secretPassword, "/", "%2F") + "@" + addr + prefix
}

// leaks lists every credential, or recognisable part or encoding of one,
// that out holds.
func leaks(out []byte) []string {
	var found []string
	for _, s := range []string{
		secretUser, secretPassword, "S3cr", "et-Zq9", "S3cr%2Fet", url2F(secretPassword),
		basicAuth, "e2e-carol", "Xy7-basic", base64.StdEncoding.EncodeToString([]byte(basicAuth)),
		base64.StdEncoding.EncodeToString([]byte(secretUser + ":" + secretPassword)),
	} {
		if bytes.Contains(out, []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

func url2F(s string) string { return strings.ReplaceAll(s, "/", "%2f") }

// Nothing the daemon prints or serves holds a credential it was given:
// not its log (at debug level) from start to stop, not /metrics, /ready,
// /v1/services or /health on -http-addr, not any page of Go's profiler on
// -pprof-addr (whose /debug/pprof/cmdline, the command line, is 404), not
// `explain`, not its errors when the registry cannot be reached; a
// password that did not parse is refused naming none of it; -pprof-addr
// off loopback, and the old -pprof, are refused with status 2.
func TestNoSecretInAnyOutput(t *testing.T) {
	clean(t)
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	pprofAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	etcd := secretURI(etcdSrv.Addr, "/secrets")
	consul := "consul://" + agent.Addr
	env := []string{"CONSUL_HTTP_AUTH=" + basicAuth}

	t.Run("served", func(t *testing.T) {
		d := launchEnv(t, env, []string{consul, etcd}, "-http-addr", httpAddr, "-pprof-addr", pprofAddr, "-resync", "1")
		d.waitFor(t, "registrator started")
		c := run(t, "--name", "secret.1", "-p", "127.0.0.1::80", imgSvc, "80")
		expectIDs(t, id("secret.1", "80"))
		eventually(t, settle, func() error {
			var st struct{ Ready bool }
			if code, err := getJSON("http://"+httpAddr+"/ready", &st); err != nil || code != 200 {
				return fmt.Errorf("/ready: %d %v", code, err)
			}
			return nil
		})
		d.waitPasses(t, d.passes()+2)

		pages := map[string][]byte{}
		get := func(url string, want int) {
			t.Helper()
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != want {
				t.Fatalf("GET %s: %s, want %d: %.200s", url, resp.Status, want, body)
			}
			if len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b { // a profile: search its protobuf
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			pages[url] = body
		}
		for _, p := range []string{"/metrics", "/ready", "/v1/services", "/health"} {
			get("http://"+httpAddr+p, 200)
		}
		if !bytes.Contains(pages["http://"+httpAddr+"/v1/services"], []byte(`"etcd://`+etcdSrv.Addr+`/secrets"`)) ||
			!bytes.Contains(pages["http://"+httpAddr+"/metrics"], []byte(`backend="etcd://`+etcdSrv.Addr+`/secrets"`)) {
			t.Errorf("/v1/services or /metrics does not name the etcd backend as etcd://%s/secrets:\n%s\n%s", etcdSrv.Addr,
				pages["http://"+httpAddr+"/v1/services"], pages["http://"+httpAddr+"/metrics"])
		}
		// Every entry of the profiler's index, the CPU profile and the
		// trace for a second; the command line is not served.
		index := "http://" + pprofAddr + "/debug/pprof/"
		get(index, 200)
		links := regexp.MustCompile(`href='([a-z]+)\?debug=1'`).FindAllStringSubmatch(string(pages[index]), -1)
		if len(links) < 8 {
			t.Fatalf("the profiler's index links %d pages:\n%s", len(links), pages[index])
		}
		for _, l := range links {
			switch name := l[1]; name {
			case "cmdline":
				get(index+"cmdline", 404)
				get(index+"cmdline?debug=1", 404)
			case "profile", "trace":
				get(index+name+"?seconds=1", 200)
			default:
				get(index+name+"?debug=1", 200)
				get(index+name, 200)
			}
		}
		get(index+"goroutine?debug=2", 200)
		get("http://"+httpAddr+"/debug/pprof/cmdline", 404) // nothing of the profiler on -http-addr

		// explain, with the URIs in the environment as the daemon reads them.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ex := exec.CommandContext(ctx, daemonBin, "explain", c)
		ex.Env = append(os.Environ(), append(env, "REGISTRATOR_REGISTRY="+consul+" "+etcd)...)
		out, err := ex.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "secret.1") {
			t.Fatalf("explain: %v\n%s", err, out)
		}
		pages["explain"] = out

		if err := d.stop(); err != nil {
			t.Fatal(err)
		}
		d.killed = true // stopped here, so that its whole log is read
		log := d.out.String()
		for _, want := range []string{"registry=\"consul://" + agent.Addr + " etcd://" + etcdSrv.Addr + "/secrets\"", "serving Go's profiler under /debug/pprof/", "stopped"} {
			if !strings.Contains(log, want) {
				t.Errorf("the log lacks %q", want)
			}
		}
		if strings.Contains(log, "is not a loopback address") {
			t.Error("a warning about a loopback -http-addr")
		}
		pages["the daemon's log"] = []byte(log)
		for what, out := range pages {
			if l := leaks(out); len(l) > 0 {
				t.Errorf("%s shows %q:\n%.2000s", what, l, out)
			}
		}
		if !t.Failed() {
			t.Logf("read %d pages and %d bytes of log: no credential in any", len(pages)-1, len(log))
		}
	})

	// Pinging a registry where nothing listens until -retry-attempts runs
	// out: every attempt's error is logged, and the last ends the daemon.
	// -http-addr on every interface gets its warning first.
	t.Run("unreachable", func(t *testing.T) {
		open := "0.0.0.0:" + strconv.Itoa(freePort(t))
		out, code := runDaemon(t, env, "-http-addr", open, "-retry-attempts", "2", "-retry-interval", "100", "-log-level", "debug",
			secretURI("127.0.0.1:"+strconv.Itoa(freePort(t)), "/x"))
		if code != 2 || !strings.Contains(string(out), "cannot reach the registry after 3 attempt(s)") {
			t.Fatalf("exit %d, want 2 after 3 attempts:\n%s", code, out)
		}
		if !strings.Contains(string(out), "-http-addr "+open+" is not a loopback address: whoever reaches it reads /metrics and /v1/services") {
			t.Errorf("no warning about -http-addr %s:\n%s", open, out)
		}
		if l := leaks(out); len(l) > 0 {
			t.Errorf("the output shows %q:\n%s", l, out)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a password that did not parse", []string{"etcd://" + secretUser + ":" + secretPassword + "@" + etcdSrv.Addr + "/x"},
			"registry URI etcd://...: its user information did not parse (or an @ follows the host): percent-encode the user name and password (/ as %2F"},
		{"-pprof-addr on every interface", []string{"-pprof-addr", "0.0.0.0:6060", consul},
			`-pprof-addr "0.0.0.0:6060": must be a loopback address and port, e.g. 127.0.0.1:6060`},
		{"-pprof-addr routable", []string{"-pprof-addr", "10.0.0.5:6060", consul}, `-pprof-addr "10.0.0.5:6060": must be a loopback address`},
		{"-pprof", []string{"-pprof", "-http-addr", httpAddr, consul}, "-pprof is removed: Go's profiler has a listener of its own, on loopback only: -pprof-addr 127.0.0.1:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runDaemon(t, env, tc.args...)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %d, output %q; want 2 and one line containing %q", code, out, tc.want)
			}
			if l := leaks(out); len(l) > 0 {
				t.Errorf("the output shows %q", l)
			}
		})
	}
}

// runDaemon runs the daemon until it exits by itself (within 30 s) and
// returns its output and exit status.
func runDaemon(t *testing.T, env []string, args ...string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemonBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return out, cmd.ProcessState.ExitCode()
}
