package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/registrator/registrator/internal/testproc"
)

// A real CoreDNS with its etcd plugin answers for what the skydns2 backend
// wrote: A and SRV records of a service, gone once its container is.
func TestSkyDNS2ServedByCoreDNS(t *testing.T) {
	bin := os.Getenv("COREDNS_BIN")
	if bin == "" {
		t.Fatal("COREDNS_BIN is not set: run the suite with `make test` (scripts/get-coredns.sh builds CoreDNS)")
	}
	clean(t)
	ports, err := testproc.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	corefile := filepath.Join(t.TempDir(), "Corefile")
	conf := fmt.Sprintf("skydns.local:%d {\n  bind 127.0.0.1\n  errors\n  etcd {\n    path /skydns\n    endpoint http://%s\n  }\n}\n", ports[0], etcdSrv.Addr)
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	lookup := func(ctx context.Context) ([]*net.SRV, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, srv, err := resolver.LookupSRV(ctx, "", "", "web.skydns.local")
		return srv, err
	}
	proc := &testproc.Process{Bin: bin, Args: []string{"-conf", corefile}}
	if err := proc.Start(func() error {
		_, err := lookup(context.Background())
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil // it answers: the name does not exist yet
		}
		return fmt.Errorf("coredns not answering: %v", err)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coredns log:\n%s", proc.Log())
		}
		proc.Stop()
	})

	startDaemonURIs(t, []string{"skydns2://" + etcdSrv.Addr + "/skydns.local"})
	p := freePort(t)
	run(t, "--name", "web.1", "-p", pub(p, "80"), "-e", "SERVICE_NAME=web", imgSvc, "80")
	eventually(t, settle, func() error {
		srv, err := lookup(context.Background())
		if err != nil {
			return err
		}
		if len(srv) != 1 || srv[0].Port != uint16(p) {
			return fmt.Errorf("SRV %v, want one record on port %d", srv, p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		addrs, err := resolver.LookupHost(ctx, srv[0].Target)
		if err != nil || len(addrs) != 1 || addrs[0] != "127.0.0.1" {
			return fmt.Errorf("A of the SRV target %s: %v (%v), want 127.0.0.1", srv[0].Target, addrs, err)
		}
		return nil
	})
	// SERVICE_WEIGHT, SERVICE_PRIORITY and SERVICE_TTL are the SRV
	// records' weight and priority and the records' TTL. CoreDNS answers
	// each weight as its share, in percent, of the weights of its priority.
	for name, weight := range map[string]string{"wt.1": "7", "wt.2": "3"} {
		run(t, "--name", name, "-p", "127.0.0.1::80", "-e", "SERVICE_NAME=wt", "-e", "SERVICE_WEIGHT="+weight, "-e", "SERVICE_PRIORITY=3", "-e", "SERVICE_TTL=12", imgSvc, "80")
	}
	eventually(t, settle, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, srv, err := resolver.LookupSRV(ctx, "", "", "wt.skydns.local")
		if err != nil {
			return err
		}
		var got []string
		for _, r := range srv {
			got = append(got, fmt.Sprintf("%d/%d", r.Priority, r.Weight))
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"3/30", "3/70"}) {
			return fmt.Errorf("SRV of wt: priority/weight %v, want [3/30 3/70]", got)
		}
		ttl, err := srvTTL(dnsAddr, "wt.skydns.local.")
		if err != nil || ttl != 12 {
			return fmt.Errorf("SRV of wt: TTL %d (%v), want 12", ttl, err)
		}
		return nil
	})

	docker(t, "rm", "-f", "web.1")
	eventually(t, settle, func() error {
		srv, err := lookup(context.Background())
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil
		}
		return fmt.Errorf("after removal SRV %v (%v), want NXDOMAIN", srv, err)
	})
}

// srvTTL asks the DNS server at addr for name's SRV records over UDP and
// returns the first answer's TTL.
func srvTTL(addr, name string) (uint32, error) {
	q, err := dnsmessage.NewName(name)
	if err != nil {
		return 0, err
	}
	msg := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: q, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET}}}
	packed, err := msg.Pack()
	if err != nil {
		return 0, err
	}
	conn, err := net.DialTimeout("udp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(packed); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return 0, err
	}
	var answer dnsmessage.Message
	if err := answer.Unpack(buf[:n]); err != nil {
		return 0, err
	}
	for _, a := range answer.Answers {
		if a.Header.Type == dnsmessage.TypeSRV {
			return a.Header.TTL, nil
		}
	}
	return 0, fmt.Errorf("no SRV answer for %s (rcode %s)", name, answer.RCode)
}
