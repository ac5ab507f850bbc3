package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// znodes returns the znodes two levels below base (<base>/<name>/<leaf>)
// with their bodies, and whether each is ephemeral.
func znodes(base string) (map[string]string, error) {
	c := zkSrv.Conn()
	names, _, err := c.Children(base)
	if err == zk.ErrNoNode {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		leaves, _, err := c.Children(base + "/" + n)
		if err != nil && err != zk.ErrNoNode {
			return nil, err
		}
		for _, l := range leaves {
			p := base + "/" + n + "/" + l
			data, stat, err := c.Get(p)
			if err == zk.ErrNoNode {
				continue
			}
			if err != nil {
				return nil, err
			}
			if stat.EphemeralOwner == 0 {
				return nil, fmt.Errorf("%s is not ephemeral", p)
			}
			out[p] = string(data)
		}
	}
	return out, nil
}

func expectZnodes(t *testing.T, base string, want map[string]string) {
	t.Helper()
	expectKeys(t, "znodes under "+base, func() (map[string]string, error) { return znodes(base) }, want)
}

// registrator's zookeeper layout: ephemeral <base>/<name>/<ip>:<port> with
// its JSON body; removed with the container; created again after the
// server lost every session.
func TestZooKeeper(t *testing.T) {
	clean(t)
	if err := zkSrv.Reset("/"); err != nil {
		t.Fatal(err)
	}
	const resync = 3 * time.Second
	startDaemonURIs(t, []string{"zookeeper://" + zkSrv.Addr + "/services"}, "-resync", "3", "-ttl", "4", "-ttl-refresh", "1")
	p1, p2 := freePort(t), freePort(t)
	web := run(t, "--name", "web.1", "-p", pub(p1, "80"), "-e", "SERVICE_TAGS=www", "-e", "SERVICE_TEAM=core", imgSvc, "80")
	run(t, "--name", "gone", "-p", pub(p2, "80"), imgSvc, "80")
	webKey := "/services/svc/127.0.0.1:" + strconv.Itoa(p1)
	goneKey := "/services/svc/127.0.0.1:" + strconv.Itoa(p2)
	wantWeb := fmt.Sprintf(`{"Name":"svc","IP":"127.0.0.1","PublicPort":%d,"PrivatePort":80,"ContainerID":%q,"Tags":["www"],"Attrs":{"team":"core"}}`, p1, web)
	eventually(t, settle, func() error {
		got, err := znodes("/services")
		if err != nil {
			return err
		}
		if got[webKey] != wantWeb {
			return fmt.Errorf("%s = %s, want %s", webKey, got[webKey], wantWeb)
		}
		if _, ok := got[goneKey]; !ok || len(got) != 2 {
			return fmt.Errorf("znodes %v, want %s and %s", got, webKey, goneKey)
		}
		return nil
	})
	docker(t, "rm", "-f", "gone")
	expectZnodes(t, "/services", map[string]string{webKey: wantWeb})

	if err := zkSrv.Wipe(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	expectZnodes(t, "/services", map[string]string{webKey: wantWeb})
	if took := time.Since(start); took > resync+5*time.Second {
		t.Errorf("znodes back %s after the server lost its sessions, more than a resync period (%s) and a reconnect", took, resync)
	} else {
		t.Logf("znodes back %s after the server restarted empty", took)
	}
}
