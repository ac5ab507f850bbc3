package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/testproc"
)

// The shipped alert rules pass their promtool unit tests.
func TestAlertRulesUnit(t *testing.T) {
	promtool, err := testproc.Find("PROMTOOL_BIN", "promtool", "`make setup` installs Debian's prometheus package")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(), "deploy", "prometheus")
	for _, args := range [][]string{{"check", "config", "prometheus.yml"}, {"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		out, err := command(dir, nil, promtool, args...)
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// A real Prometheus scrapes the real daemon with the shipped rules (their
// `for` durations shortened to seconds): the Consul agent stopped, the
// backend alert goes pending, then firing; the agent back, it resolves.
// This proves the rules use the metric names and labels the daemon
// exports.
func TestAlertsFireOnARealDaemon(t *testing.T) {
	bin, err := testproc.Find("PROMETHEUS_BIN", "prometheus", "`make setup` installs Debian's prometheus package")
	if err != nil {
		t.Fatal(err)
	}
	clean(t)
	own, err := consultest.Start() // this test stops its agent
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Stop)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startDaemonURIs(t, []string{"consul://" + own.Addr}, "-http-addr", addr)
	backend := "consul://" + own.Addr

	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	short := regexp.MustCompile(`(?m)^(\s+for:) \d+m$`).ReplaceAll(rules, []byte("$1 4s"))
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), short, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: registrator
    static_configs:
      - targets: [%q]
`, addr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	prom := &testproc.Process{Bin: bin, Args: []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + promAddr}}
	if err := prom.Start(func() error {
		resp, err := http.Get("http://" + promAddr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus log:\n%s", prom.Log())
		}
		prom.Stop()
	})

	// alert is the state of the backend alert for this backend, "" if none.
	alert := func() (string, error) {
		var body struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string
					State  string
				}
			}
		}
		if _, err := getJSON("http://"+promAddr+"/api/v1/alerts", &body); err != nil {
			return "", err
		}
		for _, a := range body.Data.Alerts {
			if a.Labels["alertname"] == "RegistratorBackendUnreachable" && a.Labels["backend"] == backend {
				return a.State, nil
			}
		}
		return "", nil
	}
	// Prometheus has scraped the daemon with the backend up.
	eventually(t, settle, func() error {
		var body struct {
			Data struct{ Result []json.RawMessage }
		}
		q := "http://" + promAddr + `/api/v1/query?query=registrator_backend_up%3D%3D1`
		if _, err := getJSON(q, &body); err != nil {
			return err
		}
		if len(body.Data.Result) != 1 {
			return fmt.Errorf("registrator_backend_up == 1: %d series", len(body.Data.Result))
		}
		return nil
	})
	if s, err := alert(); err != nil || s != "" {
		t.Fatalf("backend alert %q (%v) with the agent up", s, err)
	}

	own.Stop()
	stopped := time.Now()
	seen := map[string]time.Duration{}
	eventually(t, time.Minute, func() error {
		s, err := alert()
		if err != nil {
			return err
		}
		if _, ok := seen[s]; !ok && s != "" {
			seen[s] = time.Since(stopped)
		}
		if s != "firing" {
			return fmt.Errorf("backend alert %q, waiting for firing", s)
		}
		return nil
	})
	if _, ok := seen["pending"]; !ok {
		t.Errorf("the alert fired without being pending first: %v", seen)
	}
	t.Logf("agent stopped: pending after %s, firing after %s", seen["pending"].Round(time.Millisecond), seen["firing"].Round(time.Millisecond))

	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	eventually(t, time.Minute, func() error {
		s, err := alert()
		if err != nil {
			return err
		}
		if s != "" {
			return fmt.Errorf("backend alert %q, waiting for it to resolve", s)
		}
		return nil
	})
	t.Logf("agent back: resolved after %s", time.Since(back).Round(time.Millisecond))
}
