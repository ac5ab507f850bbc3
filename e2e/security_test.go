package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/etcdtest"
	"github.com/registrator/registrator/internal/testproc"
)

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in a test directory.
type pki struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	ca                                               *x509.Certificate
	caKey                                            *ecdsa.PrivateKey
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	p := pki{CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "registrator e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	writePEM(t, p.CA, "CERTIFICATE", der)
	p.issue(t, 2, "server.dc1.consul", p.ServerCert, p.ServerKey)
	p.issue(t, 3, "registrator", p.ClientCert, p.ClientKey)
	return p
}

// issue signs a certificate good for both server and client use on 127.0.0.1.
func (p pki) issue(t *testing.T, serial int64, name, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name, "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (p pki) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}
}

// Consul with ACLs on and default deny: a token with only service write
// rights is enough; without it every registration is refused with Consul's
// message, retried, and the daemon keeps running; the token never shows.
func TestConsulACLs(t *testing.T) {
	clean(t)
	const root = "e2e-management-token"
	a, err := consultest.Start(`acl { enabled = true, default_policy = "deny", tokens { initial_management = "` + root + `" } }`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Token = a.Addr, root
	mgmt, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var policy *api.ACLPolicy
	eventually(t, settle, func() error { // the ACL system takes a moment to bootstrap
		policy, _, err = mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "registrator", Rules: `service_prefix "" { policy = "write" }`}, nil)
		return err
	})
	token, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	registeredIn := func() ([]string, error) {
		all, err := mgmt.Agent().Services()
		if err != nil {
			return nil, err
		}
		var ids []string
		for id, s := range all {
			if s.Meta["registrator-owner"] != "" {
				ids = append(ids, id)
			}
		}
		return ids, nil
	}

	denied := launchEnv(t, []string{"CONSUL_HTTP_TOKEN="}, []string{"consul://" + a.Addr})
	denied.waitFor(t, "registrator started")
	run(t, "--name", "acl", "-p", "127.0.0.1::80", imgSvc, "80")
	denied.waitFor(t, "Permission denied")
	if ids, err := registeredIn(); err != nil || len(ids) != 0 {
		t.Fatalf("without a token: registered %v (%v), want nothing", ids, err)
	}
	if denied.gone() {
		t.Fatal("the daemon exited on a refused registration")
	}

	allowed := launchEnv(t, []string{"CONSUL_HTTP_TOKEN=" + token.SecretID}, []string{"consul://" + a.Addr})
	allowed.waitFor(t, "registrator started")
	eventually(t, settle, func() error {
		ids, err := registeredIn()
		if err != nil || len(ids) != 1 || ids[0] != id("acl", "80") {
			return fmt.Errorf("with a service-write token: registered %v (%v), want %s", ids, err, id("acl", "80"))
		}
		return nil
	})
	for _, d := range []*daemon{denied, allowed} {
		if out := d.out.String(); strings.Contains(out, token.SecretID) || strings.Contains(out, root) {
			t.Errorf("a token appears in the daemon's log:\n%s", out)
		}
	}
}

// Consul over HTTPS with client certificates required.
func TestConsulTLS(t *testing.T) {
	clean(t)
	p := newPKI(t)
	ports, err := testproc.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	https := strconv.Itoa(ports[0])
	a, err := consultest.Start(`ports { https = `+https+` }`,
		`tls { defaults { ca_file = "`+p.CA+`", cert_file = "`+p.ServerCert+`", key_file = "`+p.ServerKey+`", verify_incoming = true } }`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	uri := "consul-tls://127.0.0.1:" + https
	d := launchEnv(t, []string{"CONSUL_CACERT=" + p.CA, "CONSUL_CLIENT_CERT=" + p.ClientCert, "CONSUL_CLIENT_KEY=" + p.ClientKey}, []string{uri})
	d.waitFor(t, "registrator started")
	run(t, "--name", "tls", "-p", "127.0.0.1::80", imgSvc, "80")
	eventually(t, settle, func() error {
		all, err := a.Client().Agent().Services()
		if err != nil {
			return err
		}
		if _, ok := all[id("tls", "80")]; !ok {
			return fmt.Errorf("not registered over TLS: %v", all)
		}
		return nil
	})

	// Without a client certificate the agent refuses: a clear error at start.
	out, err := runDaemonOnce(t, []string{"CONSUL_CACERT=" + p.CA, "CONSUL_CLIENT_CERT=", "CONSUL_CLIENT_KEY="}, uri)
	if err == nil || !strings.Contains(out, "cannot reach the registry") || !strings.Contains(out, "CONSUL_CLIENT_CERT") {
		t.Errorf("without a client certificate: %v\n%s", err, out)
	}
}

// etcd over TLS with client certificates required.
func TestEtcdTLS(t *testing.T) {
	clean(t)
	p := newPKI(t)
	srv, err := etcdtest.StartTLS(etcdtest.TLS{CertFile: p.ServerCert, KeyFile: p.ServerKey, CAFile: p.CA, Client: p.clientTLS(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	uri := "etcd+tls://" + srv.Addr + "/secure?ca=" + p.CA + "&cert=" + p.ClientCert + "&key=" + p.ClientKey
	d := launch(t, []string{uri})
	d.waitFor(t, "registrator started")
	pt := freePort(t)
	run(t, "--name", "tls", "-p", pub(pt, "80"), imgSvc, "80")
	key := "/secure/svc/" + id("tls", "80")
	eventually(t, settle, func() error {
		resp, err := srv.Client().Get(t.Context(), key)
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "127.0.0.1:"+strconv.Itoa(pt) {
			return fmt.Errorf("%s: %v, want 127.0.0.1:%d", key, resp.Kvs, pt)
		}
		return nil
	})

	out, err := runDaemonOnce(t, nil, "etcd+tls://"+srv.Addr+"/secure?ca="+p.CA)
	if err == nil || !strings.Contains(out, "cannot reach the registry") {
		t.Errorf("without a client certificate: %v\n%s", err, out)
	}
}

// runDaemonOnce runs the daemon with no retries, expecting it to stop at
// start, and returns what it printed.
func runDaemonOnce(t *testing.T, env []string, uris ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemonBin, append([]string{"-retry-attempts", "0"}, uris...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
