package etcd

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/etcdtest"
	"github.com/registrator/registrator/registry/kv"
	"github.com/registrator/registrator/registry/registrytest"
)

var server *etcdtest.Server

func TestMain(m *testing.M) {
	s, err := etcdtest.Start()
	if err != nil {
		os.Stderr.WriteString("etcd tests need an etcd binary: " + err.Error() + "\n")
		os.Exit(1)
	}
	server = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

func open(t *testing.T, uri, owner string, ttl time.Duration) *kv.Backend {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(u, kv.Options{Owner: owner, TTL: ttl, Log: registrytest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var ctx = registrytest.Context

func TestContract(t *testing.T) {
	for _, format := range []string{"plain", "json"} {
		t.Run(format, func(t *testing.T) {
			uri := "etcd://" + server.Addr + "/services?format=" + format
			registrytest.Run(t, registrytest.Harness{
				Open: func(t *testing.T) bridge.Backend {
					if err := server.Reset(ctx(t)); err != nil {
						t.Fatal(err)
					}
					return open(t, uri, "owner-a", 0)
				},
				Reopen: func(t *testing.T) bridge.Backend { return open(t, uri, "owner-a", 0) },
				WriteUnmarked: func(t *testing.T, id string) {
					value := "10.1.1.1:1"
					if format == "json" {
						value = `{"address":"10.1.1.1","port":1}`
					}
					if _, err := server.Client().Put(ctx(t), "/services/other/"+id, value); err != nil {
						t.Fatal(err)
					}
				},
				WriteLegacy: func(t *testing.T, s bridge.Service) {
					var l kv.Layout = kv.Plain{Path: "/services"}
					if format == "json" {
						l = kv.JSON{Path: "/services"}
					}
					value, err := l.Value(s)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := server.Client().Put(ctx(t), l.Key(s), string(value)); err != nil {
						t.Fatal(err)
					}
				},
				WriteForeign: func(t *testing.T, s bridge.Service) {
					value := "10.1.1.1:1"
					if format == "json" {
						value = `{"address":"10.1.1.1","port":1}`
					}
					if _, err := server.Client().Put(ctx(t), kv.Plain{Path: "/services"}.Key(s), value); err != nil {
						t.Fatal(err)
					}
				},
				Stored: func(s bridge.Service) bridge.Service {
					s.Checks = nil
					if format == "plain" {
						s.Tags, s.Meta = nil, nil
					}
					return s
				},
			})
		})
	}
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		uri       string
		endpoints []string
		err       string
	}{
		{uri: "etcd://127.0.0.1:2379/services", endpoints: []string{"http://127.0.0.1:2379"}},
		{uri: "etcd://127.0.0.1:2379,127.0.0.2:2379/services", endpoints: []string{"http://127.0.0.1:2379", "http://127.0.0.2:2379"}},
		{uri: "etcd+tls://127.0.0.1:2379/services", endpoints: []string{"https://127.0.0.1:2379"}},
		{uri: "etcd://127.0.0.1:2379", endpoints: []string{"http://127.0.0.1:2379"}},
		{uri: "etcd:///services", err: "no host"},
		{uri: "etcd://,127.0.0.1:2379/services", err: "empty host"},
		{uri: "etcd://127.0.0.1:2379/s?format=xml", err: `format "xml"`},
		{uri: "etcd://127.0.0.1:2379/s?bogus=1", err: `unknown option "bogus"`},
		{uri: "etcd://127.0.0.1:2379/s?cert=/x.pem", err: "cert and key must be given together"},
		{uri: "etcd://127.0.0.1:2379/s?ca=/nonexistent/ca.pem", err: "tls"},
		{uri: "etcd://127.0.0.1:2379/s?marks=relative", err: "marks"},
		{uri: "etcd://user:s3cret@127.0.0.1:2379/s?bogus=1", err: `etcd: etcd://127.0.0.1:2379/s: unknown option "bogus"`},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(u, kv.Options{Owner: "o", Log: registrytest.Quiet()})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "user") {
					t.Fatalf("error %q shows the user information", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if d := cmp.Diff(tc.endpoints, b.Store().(*Store).Endpoints()); d != "" {
				t.Errorf("endpoints (-want +got):\n%s", d)
			}
		})
	}
}

func svc(id string) bridge.Service {
	return bridge.Service{ID: id, Name: "web", Address: "10.0.0.5", Port: 80, Container: "c-" + id, Owner: "me"}
}

// Entries live on one lease; when it is lost (here: revoked, as after an
// outage longer than the TTL), the entries are gone, a new lease is taken
// and the next write succeeds.
func TestLeaseLostAndRegained(t *testing.T) {
	if err := server.Reset(ctx(t)); err != nil {
		t.Fatal(err)
	}
	b := open(t, "etcd://"+server.Addr+"/lease", "me", 10*time.Second)
	if err := b.Register(ctx(t), svc("a")); err != nil {
		t.Fatal(err)
	}
	resp, err := server.Client().Get(ctx(t), "/lease/web/a")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("entry %v (%v), want one key on a lease", resp, err)
	}
	first := resp.Kvs[0].Lease
	if _, err = server.Client().Revoke(ctx(t), clientv3.LeaseID(first)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		all, err := b.Services(ctx(t))
		if err == nil && len(all) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the revoke Services = %v, %v; want empty", all, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Register(ctx(t), svc("a")); err != nil {
		t.Fatal(err)
	}
	resp, err = server.Client().Get(ctx(t), "/lease/web/a")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == first {
		t.Fatalf("entry %v (%v), want one key on a new lease", resp, err)
	}
}

// With etcd's authentication on, the daemon's user and password from the
// URI or the environment are used; a wrong password is a clear error that
// does not show it.
func TestAuth(t *testing.T) {
	srv, err := etcdtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := srv.Client()
	for _, step := range []func() error{
		func() error { _, err := c.UserAdd(ctx(t), "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx(t), "root", "root"); return err },
		func() error { _, err := c.AuthEnable(ctx(t)); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	good := open(t, "etcd://root:rootpw@"+srv.Addr+"/auth", "me", 0)
	if err := good.Ping(ctx(t)); err != nil {
		t.Fatalf("ping with the right password: %v", err)
	}
	if err := good.Register(ctx(t), svc("a")); err != nil {
		t.Fatalf("register with the right password: %v", err)
	}

	t.Setenv("ETCD_USERNAME", "root")
	t.Setenv("ETCD_PASSWORD", "rootpw")
	fromEnv := open(t, "etcd://"+srv.Addr+"/auth", "me", 0)
	if all, err := fromEnv.Services(ctx(t)); err != nil || len(all) != 1 {
		t.Fatalf("with credentials from the environment: %v, %v; want the one entry", all, err)
	}

	bad := open(t, "etcd://root:wrong-s3cret@"+srv.Addr+"/auth", "me", 0)
	err = bad.Ping(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("ping with a wrong password: %v, want an authentication error", err)
	}
	if strings.Contains(err.Error(), "wrong-s3cret") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// Unchanged must see every creation, change and removal under the
// prefixes since its token, and nothing outside them.
func TestUnchangedSeesEveryChangeUnderThePrefixes(t *testing.T) {
	if err := server.Reset(ctx(t)); err != nil {
		t.Fatal(err)
	}
	st := open(t, "etcd://"+server.Addr+"/snap", "me", 0).Store().(*Store)
	cli := server.Client()
	put := func(k, v string) {
		if _, err := cli.Put(ctx(t), k, v); err != nil {
			t.Fatal(err)
		}
	}
	put("/snap/a/1", "x")
	put("/snap/m/1", "x")
	prefixes := []string{"/snap/a/", "/snap/m/"}
	token := func() string {
		lists, tok, err := st.ListSnapshot(ctx(t), prefixes...)
		if err != nil || len(lists) != 2 || tok == "" {
			t.Fatalf("ListSnapshot = %v, %q, %v", lists, tok, err)
		}
		return tok
	}
	unchanged := func(tok string) bool {
		same, err := st.Unchanged(ctx(t), tok, prefixes...)
		if err != nil {
			t.Fatal(err)
		}
		return same
	}
	for _, tc := range []struct {
		name   string
		change func()
		same   bool
	}{
		{"nothing", func() {}, true},
		{"a key outside", func() { put("/snap/other/1", "x") }, true},
		{"the same value written again", func() { put("/snap/a/1", "x") }, false},
		{"a new key", func() { put("/snap/m/2", "x") }, false},
		{"a key removed", func() { _, _ = cli.Delete(ctx(t), "/snap/m/1") }, false},
		{"one key added and one removed", func() { put("/snap/a/9", "x"); _, _ = cli.Delete(ctx(t), "/snap/a/1") }, false},
		{"everything removed", func() { _, _ = cli.Delete(ctx(t), "/snap/", clientv3.WithPrefix()) }, false},
	} {
		tok := token()
		tc.change()
		if got := unchanged(tok); got != tc.same {
			t.Errorf("%s: Unchanged = %v, want %v", tc.name, got, tc.same)
		}
	}
	if unchanged("garbage") || unchanged(token()+",1") {
		t.Error("a token of other prefixes passes for unchanged")
	}

	// Another cluster (as one wiped and started again at the same address)
	// with the same number of keys, all older than the token's revision.
	other, err := etcdtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tok := token()
	st2 := open(t, "etcd://"+other.Addr+"/snap", "me", 0).Store().(*Store)
	if same, err := st2.Unchanged(ctx(t), tok, prefixes...); err != nil || same {
		t.Errorf("another cluster: Unchanged = %v, %v; want false", same, err)
	}
}

// Services answers an unchanged registry from its last read; a change made
// behind its back must show at the next call.
func TestServicesSeesChangesBehindItsBack(t *testing.T) {
	if err := server.Reset(ctx(t)); err != nil {
		t.Fatal(err)
	}
	b := open(t, "etcd://"+server.Addr+"/snap", "me", 0)
	a := svc("a")
	a.Owner = "me"
	if err := b.Register(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	list := func() []bridge.Service {
		t.Helper()
		all, err := b.Services(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	first := list()
	if len(first) != 1 || first[0].Revision == "" {
		t.Fatalf("Services = %+v, want a with its revision", first)
	}
	again := list()
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("an unchanged registry reads differently (-first +again):\n%s", diff)
	}
	again[0].ID = "changed by the caller"
	if list()[0].ID != "a" {
		t.Error("a caller's change to one result shows in the next")
	}
	if _, err := server.Client().Put(ctx(t), "/snap/web/a", "10.9.9.9:1"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 1 || got[0].Address != "10.9.9.9" || got[0].Revision != "" {
		t.Errorf("after the entry was overwritten: %+v, want the new address and no revision (rewrite it)", got)
	}
	if _, err := server.Client().Put(ctx(t), "/snap/other/b", "10.1.1.1:2"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 2 {
		t.Errorf("after another program's entry appeared: %+v, want 2 entries", got)
	}
}

// Two hosts given the same -id (one owner mark, two writers): each reads
// the other's entries back as the other host's (Writer), on a lease of
// its own, so that neither adopts the other's lease at start and each
// host's entries go with its own daemon. An entry written without a
// writer (before it was kept) reads back without one (the bridge writes
// it again).
func TestSameIDOnTwoHosts(t *testing.T) {
	if err := server.Reset(ctx(t)); err != nil {
		t.Fatal(err)
	}
	uri := "etcd://" + server.Addr + "/same"
	openAs := func(writer string) *kv.Backend {
		u, _ := url.Parse(uri)
		b, err := Open(u, kv.Options{Owner: "rack-7", Writer: writer, Log: registrytest.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	leaseOf := func(key string) int64 {
		t.Helper()
		resp, err := server.Client().Get(ctx(t), key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("%s: %v (%v), want one key", key, resp, err)
		}
		return int64(resp.Kvs[0].Lease)
	}
	a, b := openAs("host-a"), openAs("host-b")
	sa, sb := svc("host-a:web:80"), svc("host-b:web:80")
	sa.Owner, sb.Owner = "rack-7", "rack-7"
	sa.Writer, sb.Writer = "host-a", "host-b"
	if err := a.Register(ctx(t), sa); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx(t), sb); err != nil {
		t.Fatal(err)
	}
	la, lb := leaseOf("/same/web/host-a:web:80"), leaseOf("/same/web/host-b:web:80")
	if la == 0 || la == lb {
		t.Fatalf("leases %x and %x: want one each", la, lb)
	}
	for name, be := range map[string]*kv.Backend{"host-a": a, "host-b": b} {
		all, err := be.Services(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		writers := map[string]string{}
		for _, s := range all {
			writers[s.ID] = s.Writer
			if s.Owner != "rack-7" {
				t.Errorf("%s reads %s with owner %q", name, s.ID, s.Owner)
			}
			if s.Writer == name && s.Revision == "" {
				t.Errorf("%s reads its own %s without a revision: it would write it again", name, s.ID)
			}
		}
		if writers["host-a:web:80"] != "host-a" || writers["host-b:web:80"] != "host-b" {
			t.Errorf("%s reads the writers %v", name, writers)
		}
	}

	// host-a's daemon restarted: it adopts its own lease, never host-b's.
	a.Close()
	a2 := openAs("host-a")
	if _, err := a2.Services(ctx(t)); err != nil {
		t.Fatal(err)
	}
	sa2 := sa
	sa2.Port++
	if err := a2.Register(ctx(t), sa2); err != nil {
		t.Fatal(err)
	}
	if l := leaseOf("/same/web/host-a:web:80"); l != la {
		t.Errorf("host-a's restarted daemon wrote on lease %x, want its own %x (host-b's is %x)", l, la, lb)
	}

	// An entry written before the writer was kept.
	old := openAs("")
	so := svc("host-a:db:5432")
	so.Owner = "rack-7"
	if err := old.Register(ctx(t), so); err != nil {
		t.Fatal(err)
	}
	all, err := a2.Services(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range all {
		if s.ID == so.ID {
			found = true
			if s.Writer != "" {
				t.Errorf("an entry written without a writer reads back with writer %q", s.Writer)
			}
		}
	}
	if !found {
		t.Errorf("%s not read back", so.ID)
	}
}
