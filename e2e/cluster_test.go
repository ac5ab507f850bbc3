package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/registrator/registrator/internal/bed"
	"github.com/registrator/registrator/internal/testkit"
)

// fleet is hosts on a network of their own (internal/bed) against a
// 3-server Consul cluster and a 3-member etcd cluster, as users run them:
// a Consul client agent on every host, the daemon beside it with its
// default flags, registering into its own agent and into etcd.
type fleet struct {
	lan     *bed.LAN
	cluster *bed.Cluster
	hosts   []*fleetHost
}

type fleetHost struct {
	*bed.Host
	agent *bed.Agent
	d     *daemon
	web   map[string]bool // the containers it runs, each publishing port 80
	lost  bool
}

func newFleet(t *testing.T, names ...string) *fleet {
	t.Helper()
	start := time.Now()
	f := &fleet{}
	f.lan, f.cluster = bedCluster(t, true)
	for _, name := range names {
		h := lanHost(t, f.lan, name, imgSvc)
		fh := &fleetHost{Host: h, web: map[string]bool{}}
		var err error
		if fh.agent, err = f.cluster.Agent(h); err != nil {
			t.Fatal(err)
		}
		fh.d = startInside(t, h, []string{"consul://127.0.0.1:8500", "consulkv://127.0.0.1:8500/kv", "etcd://" + f.cluster.EtcdEndpoints() + "/services"}, "-ip", h.Addr)
		f.hosts = append(f.hosts, fh)
	}
	t.Logf("%d servers and %d hosts up in %s", len(f.cluster.Servers), len(names), time.Since(start).Round(time.Millisecond))
	if ms, _ := bed.RTOMax(); ms > 0 {
		t.Logf("every machine of the bed caps TCP's retransmission timeout at %d ms (%s)", ms, bed.RTOMaxEnv)
	}
	if d, _ := bed.RPCClientTimeout(); d > 0 {
		t.Logf("every host's Consul agent gives an RPC up after %s (%s)", d, bed.RPCClientTimeoutEnv)
	}
	f.offline(t)
	return f
}

// offline fails the test unless every Consul process of the bed runs with
// its update check off: a non-dev agent otherwise asks a HashiCorp server
// on the Internet for a newer release, and a test sends nothing beyond
// the addresses it made.
func (f *fleet) offline(t *testing.T) {
	t.Helper()
	clients := map[string]*api.Client{}
	for _, s := range f.cluster.Servers {
		clients[s.Name] = s.ConsulAPI()
	}
	for _, h := range f.hosts {
		clients[h.Name+"'s agent"] = h.agent.API
	}
	for name, c := range clients {
		self, err := c.Agent().Self()
		if err != nil {
			t.Fatal(err)
		}
		if off, _ := self["DebugConfig"]["DisableUpdateCheck"].(bool); !off {
			t.Errorf("%s runs with its update check on", name)
		}
	}
}

// run starts a container called name on h, publishing port 80.
func (h *fleetHost) run(t *testing.T, name string) {
	t.Helper()
	hostDocker(t, h.Host, "run", "-d", "--name", name, "-p", "80", imgSvc, "80")
	h.web[name] = true
}

// rm removes h's container called name.
func (h *fleetHost) rm(t *testing.T, name string) {
	t.Helper()
	hostDocker(t, h.Host, "rm", "-f", name)
	delete(h.web, name)
}

// want is every live host's service IDs.
func (f *fleet) want() []string {
	var ids []string
	for _, h := range f.hosts {
		if h.lost {
			continue
		}
		for name := range h.web {
			ids = append(ids, h.Name+":"+name+":80")
		}
	}
	slices.Sort(ids)
	return ids
}

// consul reads the IDs of the passing instances of svc from a Consul
// server that runs.
func (f *fleet) consul() ([]string, error) {
	var last error
	for _, s := range f.cluster.Servers {
		entries, _, err := s.ConsulAPI().Health().Service("svc", "", true, nil)
		if err != nil {
			last = err
			continue
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.Service.ID)
		}
		slices.Sort(ids)
		return ids, nil
	}
	return nil, last
}

// consulKV reads the IDs under kv/svc/ in Consul's key-value store from a
// Consul server that runs.
func (f *fleet) consulKV() ([]string, error) {
	var last error
	for _, s := range f.cluster.Servers {
		keys, _, err := s.ConsulAPI().KV().Keys("kv/svc/", "", nil)
		if err != nil {
			last = err
			continue
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, strings.TrimPrefix(k, "kv/svc/"))
		}
		slices.Sort(ids)
		return ids, nil
	}
	return nil, last
}

// etcd reads the IDs under /services/svc/.
func (f *fleet) etcd() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := f.cluster.Etcd.Get(ctx, "/services/svc/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), "/services/svc/"))
	}
	slices.Sort(ids)
	return ids, nil
}

// differ counts the entries a registry lacks and those it has in excess.
func differ(got, want []string) (missing, stale int) {
	in := map[string]bool{}
	for _, g := range got {
		in[g] = true
	}
	for _, w := range want {
		if !in[w] {
			missing++
		}
		delete(in, w)
	}
	return missing, len(in)
}

// converge waits until read's IDs equal every live host's and returns how
// long that took from since; the test fails past limit, with the count of
// missing and stale entries.
func (f *fleet) converge(t *testing.T, what string, read func() ([]string, error), since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	var got []string
	var err error
	slow := "" // what was still wrong slowRejoin after the change
	for {
		got, err = read()
		if err == nil && slices.Equal(got, f.want()) {
			took := time.Since(since)
			t.Logf("%s: converged %s after the change (limit %s)%s", what, took.Round(time.Millisecond), limit, slow)
			return took
		}
		if slow == "" && time.Since(since) > slowRejoin {
			slow = fmt.Sprintf("; %s after it, it had %v (err %v), want %v", slowRejoin, got, err, f.want())
		}
		if time.Since(since) > limit {
			missing, stale := differ(got, f.want())
			t.Errorf("%s: %d entries missing and %d stale %s after the change (err %v): has %v, want %v",
				what, missing, stale, limit, err, got, f.want())
			return time.Since(since)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// all waits for Consul's passing answers, Consul KV and etcd to equal
// every live host's containers, timing each on its own.
func (f *fleet) all(t *testing.T, what string, since time.Time, limit time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for name, read := range map[string]func() ([]string, error){"Consul": f.consul, "Consul KV": f.consulKV, "etcd": f.etcd} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.converge(t, what+" ("+name+")", read, since, limit)
		}()
	}
	wg.Wait()
}

// consulSync bounds how long Consul may take to hold a host's services
// after its servers or the link to them failed. It is the agent's doing,
// not the daemon's: a client agent that cannot reach the servers stalls
// its local API (its anti-entropy sync holds the agent's state lock while
// it waits on them, so registrations and reads wait too; after a cut, it
// waits on the RPC connection the cut left dead until the connection's
// keepalive fails or TCP's next retransmission gets through), retries a
// failed sync 15 s later, and its gossip retries a member it took for dead
// every 30 s, and only with a probability where few members failed (one
// of ten make fleet runs took over 45 s after a 10 s cut).
const consulSync = 90 * time.Second

// slowRejoin is how long Consul's catalog may take to catch up after a
// host's reconnection before the test logs what the host's agent, its
// daemon and the servers said meanwhile. It is not a limit: the catch-up
// is the agent's and Consul's (docs/many-hosts.md); the limit is
// consulSync.
const slowRejoin = 5 * time.Second

// acceptBound is what the daemon answers for after a cut: every write it
// wants is in its host's agent this soon after the agent answers its local
// API again.
const acceptBound = time.Second

var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`)

// reconnected times how long after h's reconnection etcd (within 5 s),
// h's own Consul agent (acceptBound after it answers again), Consul's
// passing answers and Consul KV (within consulSync: their catch-up is
// Consul's, logged and not required) were equal to the containers again,
// each on its own: one registry's wait does not add to another's figure.
// A Consul slower than slowRejoin is explained.
func (f *fleet) reconnected(t *testing.T, h *fleetHost, what string, cut, mended time.Time) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Go(func() { f.converge(t, what+" (etcd)", f.etcd, mended, 5*time.Second) })
	wg.Go(func() { h.accepts(t, what, mended) })
	wg.Go(func() {
		if took := f.converge(t, what+" (Consul)", f.consul, mended, consulSync); took > slowRejoin {
			f.explain(t, h, cut, mended)
		}
	})
	wg.Go(func() { f.converge(t, what+" (Consul KV)", f.consulKV, mended, consulSync) })
	wg.Wait()
}

// explain logs what h's Consul agent and h's daemon logged from the cut
// on (the daemon: its Consul lines), and the servers' lines that name h
// or tell of a member failed or joined (after a partition, the cut host's
// gossip may declare others dead).
func (f *fleet) explain(t *testing.T, h *fleetHost, cut, mended time.Time) {
	t.Helper()
	from := cut.UTC().Format("2006-01-02T15:04:05")
	since := func(log string, keep func(string) bool) string {
		var b strings.Builder
		on := false
		for _, l := range strings.Split(log, "\n") {
			// Both logs stamp each line with an RFC 3339 time, in UTC.
			if stamp := rfc3339.FindString(l); stamp != "" && stamp >= from {
				on = true
			}
			if on && keep(l) {
				b.WriteString(l + "\n")
			}
		}
		return b.String()
	}
	all := func(string) bool { return true }
	t.Logf("%s was cut off at %s and reconnected at %s (UTC); its agent's log since the cut:\n%s",
		h.Name, cut.UTC().Format("15:04:05.000"), mended.UTC().Format("15:04:05.000"), since(h.agent.Proc.Log(), all))
	t.Logf("%s's daemon, its Consul lines since the cut:\n%s", h.Name, since(h.d.out.String(), func(l string) bool {
		return strings.Contains(l, "consul")
	}))
	for _, s := range f.cluster.Servers {
		t.Logf("%s, its lines naming %s or a member's failure or join since the cut:\n%s", s.Name, h.Name, since(s.Consul.Log(), func(l string) bool {
			return strings.Contains(l, h.Name) || strings.Contains(l, "EventMemberFailed") || strings.Contains(l, "EventMemberJoin")
		}))
	}
}

// ids is h's service IDs.
func (h *fleetHost) ids() []string {
	var ids []string
	for name := range h.web {
		ids = append(ids, h.Name+":"+name+":80")
	}
	slices.Sort(ids)
	return ids
}

// accepts fails the test unless h's own Consul agent holds exactly h's
// services acceptBound at most after it first answers a read of its
// services from mended on: a cut can hold the agent's local API up until
// its link to the servers recovers, and what it takes then is the
// daemon's doing. Each read waits as long as the agent makes it, up to
// consulSync after mended; the figures are logged.
func (h *fleetHost) accepts(t *testing.T, what string, mended time.Time) {
	t.Helper()
	want := h.ids()
	deadline := mended.Add(consulSync)
	var answered time.Time
	var got []string
	for {
		ctx, cancel := context.WithDeadline(t.Context(), deadline)
		services, err := h.agent.API.Agent().ServicesWithFilterOpts("", (&api.QueryOptions{}).WithContext(ctx))
		cancel()
		now := time.Now()
		if err == nil {
			if answered.IsZero() {
				answered = now
				t.Logf("%s (%s's own agent): answered %s after the reconnection", what, h.Name, answered.Sub(mended).Round(time.Millisecond))
			}
			got = got[:0]
			for id := range services {
				got = append(got, id)
			}
			slices.Sort(got)
			if slices.Equal(got, want) {
				took := now.Sub(answered)
				t.Logf("%s (%s's own agent, the daemon's writes): converged %s after the agent answered (limit %s)", what, h.Name, took.Round(time.Millisecond), acceptBound)
				if took > acceptBound {
					t.Errorf("%s: %s's agent held the daemon's writes %s after it answered again, want within %s", what, h.Name, took.Round(time.Millisecond), acceptBound)
				}
				return
			}
		}
		if now.After(deadline) {
			t.Errorf("%s: %s's agent holds %v %s after the reconnection (err %v, answered: %v), want %v", what, h.Name, got, consulSync, err, !answered.IsZero(), want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentHolds waits until h's own Consul agent holds exactly h's services,
// limit after since at most: what the daemon writes, whatever the agent's
// link to the servers.
func (h *fleetHost) agentHolds(t *testing.T, what string, since time.Time, limit time.Duration) {
	t.Helper()
	want := h.ids()
	var got []string
	err := testkit.Eventually(t.Context(), limit-time.Since(since), 50*time.Millisecond, func() error {
		services, err := h.agent.API.Agent().Services()
		if err != nil {
			return err
		}
		got = got[:0]
		for id := range services {
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s's agent holds %v, want %v", h.Name, got, want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
		return
	}
	t.Logf("%s (%s's own agent): converged %s after the change", what, h.Name, time.Since(since).Round(time.Millisecond))
}

// alive fails the test if a live host's daemon has exited.
func (f *fleet) alive(t *testing.T) {
	t.Helper()
	for _, h := range f.hosts {
		if !h.lost && h.d.gone() {
			t.Fatalf("%s's daemon exited", h.Name)
		}
	}
}

// longCut is how TestFleetCluster cuts a host off past the TTL: for 31 s,
// or FLEET_CUT (a duration longer than the daemons' 30 s TTL), and at once,
// or FLEET_CUT_DELAY (at most 30 s) later. Consul's time to be right again
// depends on where the link's return falls in the agent's 30 s connection
// keepalive and in TCP's retransmissions (docs/many-hosts.md); the two
// move it, for make fleet to try other points than the default.
func longCut() (length, delay time.Duration, err error) {
	length, delay = 31*time.Second, 0
	if v := os.Getenv("FLEET_CUT"); v != "" {
		length, err = time.ParseDuration(v)
		if err != nil || length <= 30*time.Second || length > 10*time.Minute {
			return 0, 0, fmt.Errorf("FLEET_CUT=%q: want a duration longer than the 30 s TTL and at most 10m", v)
		}
	}
	if v := os.Getenv("FLEET_CUT_DELAY"); v != "" {
		delay, err = time.ParseDuration(v)
		if err != nil || delay < 0 || delay > 30*time.Second {
			return 0, 0, fmt.Errorf("FLEET_CUT_DELAY=%q: want a duration from 0 to 30s", v)
		}
	}
	return length, delay, nil
}

// briefCut is how long TestFleetCluster's brief cut lasts at least:
// FLEET_BRIEF_CUT (under the 30 s TTL), or, by default, only until the
// daemon has seen four of its etcd writes fail (11–17 s). A 20 s cut
// ended before the agent's multiplexer gave its dead connection up in
// every run of 2026-12-02 (its keepalive's phase decides), and so shows
// the agent's wait on TCP's retransmission in Consul's catch-up.
func briefCut() (time.Duration, error) {
	v := os.Getenv("FLEET_BRIEF_CUT")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d >= 30*time.Second {
		return 0, fmt.Errorf("FLEET_BRIEF_CUT=%q: want a duration under the 30 s TTL", v)
	}
	return d, nil
}

// Hosts on their own network, a Consul cluster with an agent per host and
// an etcd cluster, every daemon with its default flags (-ttl 30, -resync
// 30): each kind of failure across hosts, one after the other, with how
// long the registries took to be equal to the running containers again.
func TestFleetCluster(t *testing.T) {
	long, delay, err := longCut()
	if err != nil {
		t.Fatal(err)
	}
	brief, err := briefCut()
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, "host-a", "host-b", "host-c")
	a, b, c := f.hosts[0], f.hosts[1], f.hosts[2]

	// The same container names and ports on every host.
	start := time.Now()
	for _, h := range f.hosts {
		h.run(t, "web")
		h.run(t, "api")
	}
	f.all(t, "same names on every host", start, settle)

	t.Run("agent restarted empty", func(t *testing.T) {
		if err := a.agent.RestartEmpty(); err != nil {
			t.Fatal(err)
		}
		// From the moment the new agent answers: the daemon noticing,
		// its writes, and the agent's sync to the servers.
		back := time.Now()
		f.converge(t, "host-a's agent restarted with no state (Consul)", f.consul, back, 5*time.Second)
		f.converge(t, "host-a's agent restarted with no state (Consul KV)", f.consulKV, back, 5*time.Second)
		f.alive(t)
	})

	t.Run("Consul leader killed", func(t *testing.T) {
		leader, err := f.cluster.ConsulLeader()
		if err != nil {
			t.Fatal(err)
		}
		leader.Consul.Kill()
		start := time.Now()
		b.run(t, "during-election")
		c.rm(t, "api")
		b.agentHolds(t, "Consul leader killed", start, 5*time.Second)
		c.agentHolds(t, "Consul leader killed", start, 5*time.Second)
		f.all(t, "Consul leader "+leader.Name+" killed", start, consulSync)
		if err := leader.StartConsul(); err != nil {
			t.Fatal(err)
		}
		f.alive(t)
	})

	t.Run("etcd member stopped", func(t *testing.T) {
		leader, err := f.cluster.EtcdLeader(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var follower *bed.Server
		for _, s := range f.cluster.Servers {
			if s != leader {
				follower = s
				break
			}
		}
		follower.Member.Stop()
		start := time.Now()
		a.run(t, "member-down")
		b.rm(t, "during-election")
		f.all(t, "etcd member "+follower.Name+" stopped", start, settle)
		if err := follower.StartMember(); err != nil {
			t.Fatal(err)
		}
		f.alive(t)
	})

	t.Run("etcd leader stopped", func(t *testing.T) {
		leader, err := f.cluster.EtcdLeader(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		leader.Member.Stop()
		start := time.Now()
		c.run(t, "leader-down")
		a.rm(t, "member-down")
		f.all(t, "etcd leader "+leader.Name+" stopped", start, settle)
		if err := leader.StartMember(); err != nil {
			t.Fatal(err)
		}
		f.alive(t)
	})

	t.Run("host cut off briefly", func(t *testing.T) {
		if err := f.lan.Cut(a.Name); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		// Changes while it cannot reach etcd: their writes fail and are
		// retried, the retries backing off.
		a.run(t, "brief-cut")
		a.rm(t, "api")
		f.converge(t, "host-a's daemon saw its etcd writes fail", func() ([]string, error) {
			// etcd's own: the agent's may fail first, or not at all.
			if n := a.d.lines("sync failed, will retry", `backend="etcd://`); n < 4 {
				return nil, fmt.Errorf("%d failed etcd syncs", n)
			}
			return f.want(), nil
		}, cut, 40*time.Second)
		if wait := brief - time.Since(cut); wait > 0 {
			time.Sleep(wait) // FLEET_BRIEF_CUT
		}
		if err := f.lan.Mend(a.Name); err != nil {
			t.Fatal(err)
		}
		mended := time.Now()
		t.Logf("host-a cut off for %s", mended.Sub(cut).Round(time.Millisecond))
		f.reconnected(t, a, "host-a reconnected after a brief cut", cut, mended)
		if !strings.Contains(a.d.out.String(), "the backend answers again: full reconcile now") {
			t.Error("host-a's daemon did not say that etcd answered again")
		}
		f.alive(t)
	})

	t.Run("host cut off past the TTL", func(t *testing.T) {
		time.Sleep(delay)
		if err := f.lan.Cut(b.Name); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		b.run(t, "while-cut")
		b.rm(t, "api")
		// Its etcd entries go with its lease, after the TTL; until then
		// they are what they were at the cut.
		b.lost = true
		f.converge(t, "host-b's etcd entries gone with its lease", f.etcd, cut, 40*time.Second)
		b.lost = false
		if wait := long - time.Since(cut); wait > 0 {
			time.Sleep(wait) // cut off longer than the TTL, whatever the lease's phase
		}
		if err := f.lan.Mend(b.Name); err != nil {
			t.Fatal(err)
		}
		mended := time.Now()
		t.Logf("host-b cut off for %s", mended.Sub(cut).Round(time.Millisecond))
		f.reconnected(t, b, "host-b reconnected", cut, mended)
		f.alive(t)
	})

	t.Run("host lost", func(t *testing.T) {
		c.d.kill9(t)
		c.agent.Proc.Kill()
		c.Kill()
		lost := time.Now()
		c.lost = true
		f.all(t, "host-c lost", lost, 35*time.Second)
		f.alive(t)
	})

	// Nothing any daemon did was a removal of another host's entry.
	for _, h := range f.hosts {
		for _, o := range f.hosts {
			if o != h && strings.Contains(h.d.out.String(), o.Name+":") && strings.Contains(h.d.out.String(), "deregistered service="+o.Name) {
				t.Errorf("%s's daemon deregistered one of %s's entries", h.Name, o.Name)
			}
		}
	}
}
