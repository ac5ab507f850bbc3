package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// The worked examples of registrator's documentation, as the contract gives them.
func TestWorkedExamples(t *testing.T) {
	clean(t)
	startDaemon(t, "-ip", "192.168.1.102")

	p := freePort(t)
	run(t, "--name", "redis.0", "-p", pub(p, "6379"), imgRedis, "6379")
	expect(t, map[string]svc{
		id("redis.0", "6379"): {Name: "redis", Address: "192.168.1.102", Port: p},
	})

	p443, p80 := freePort(t), freePort(t)
	nginx := run(t, "--name", "nginx.0", "-p", pub(p443, "443"), "-p", pub(p80, "80"), imgNginx, "443", "80")
	expect(t, map[string]svc{
		id("redis.0", "6379"): {Name: "redis", Address: "192.168.1.102", Port: p},
		id("nginx.0", "443"):  {Name: "nginx-443", Address: "192.168.1.102", Port: p443},
		id("nginx.0", "80"):   {Name: "nginx-80", Address: "192.168.1.102", Port: p80},
	})

	docker(t, "rm", "-f", nginx)
	run(t, "--name", "nginx.0", "-p", pub(p443, "443"), "-p", pub(p80, "80"),
		"-e", "SERVICE_443_NAME=https", "-e", "SERVICE_443_ID=https.12345", "-e", "SERVICE_443_SNI=enabled",
		"-e", "SERVICE_80_NAME=http", "-e", "SERVICE_TAGS=www", imgNginx, "443", "80")
	expect(t, map[string]svc{
		id("redis.0", "6379"): {Name: "redis", Address: "192.168.1.102", Port: p},
		"https.12345":         {Name: "https", Address: "192.168.1.102", Port: p443, Tags: []string{"www"}, Meta: map[string]string{"sni": "enabled"}},
		id("nginx.0", "80"):   {Name: "http", Address: "192.168.1.102", Port: p80, Tags: []string{"www"}},
	})
}

func TestMetadataFromEnvAndLabels(t *testing.T) {
	clean(t)
	startDaemon(t)
	p1, p2, p3, p4, p5 := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	run(t, "--name", "meta", "-p", pub(p1, "80"), "-p", pub(p2, "81"),
		"-e", "SERVICE_NAME=from-env", "--label", "SERVICE_NAME=from-label", // a label beats env
		"-e", "SERVICE_81_NAME=admin", // a per-port name beats the generic one, without suffix
		"-e", `SERVICE_TAGS=b,a,x\,y`, "-e", "SERVICE_81_TAGS=admin",
		"-e", "SERVICE_REGION=eu", "--label", "SERVICE_com.example.team=core", // attributes; a dotted key is sanitised
		"-e", "SERVICE_CHECK_TTL=30s", // check keys are not attributes
		"-e", "SERVICE_IGNORE=false", // false does not ignore
		imgSvc, "80", "81")
	run(t, "--name", "ignored", "-p", pub(p3, "80"), "-e", "SERVICE_IGNORE=true", imgSvc, "80")
	// Two registrable ports, one ignored: the generic name still gets its suffix.
	run(t, "--name", "half", "-p", pub(p4, "80"), "-p", pub(p5, "81"), "-e", "SERVICE_81_IGNORE=1", imgApp, "80", "81")

	attrs := map[string]string{"region": "eu", "com_example_team": "core"}
	expect(t, map[string]svc{
		id("meta", "80"): {Name: "from-label-80", Address: "127.0.0.1", Port: p1, Tags: []string{"b", "a", "x,y"}, Meta: attrs},
		id("meta", "81"): {Name: "admin", Address: "127.0.0.1", Port: p2, Tags: []string{"admin"}, Meta: attrs},
		id("half", "80"): {Name: "app-80", Address: "127.0.0.1", Port: p4},
	})
}

func TestUDP(t *testing.T) {
	clean(t)
	startDaemon(t)
	p := freePort(t)
	run(t, "--name", "dns", "-p", pub(p, "53/udp"), "-p", pub(p, "53/tcp"), "-e", "SERVICE_TAGS=dns",
		"-e", "SERVICE_53_NAME=resolver", imgSvc, "53/udp", "53")
	expect(t, map[string]svc{
		id("dns", "53"):     {Name: "resolver", Address: "127.0.0.1", Port: p, Tags: []string{"dns"}},
		id("dns", "53:udp"): {Name: "resolver", Address: "127.0.0.1", Port: p, Tags: []string{"dns", "udp"}},
	})
}

func TestInternal(t *testing.T) {
	clean(t)
	startDaemon(t, "-internal")
	c := run(t, "--name", "inner", "--expose", "9000", "-p", "127.0.0.1::80", imgSvc, "80", "9000")
	ip := docker(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", c)
	expect(t, map[string]svc{
		id("inner", "80"):   {Name: "svc-80", Address: ip, Port: 80},
		id("inner", "9000"): {Name: "svc-9000", Address: ip, Port: 9000},
	})
}

func TestUnpublishedPortsAreSkipped(t *testing.T) {
	clean(t)
	startDaemon(t)
	run(t, "--name", "private", "--expose", "9000", imgSvc, "9000")
	p := freePort(t)
	run(t, "--name", "public", "--expose", "9000", "-p", pub(p, "80"), imgSvc, "80", "9000")
	expect(t, map[string]svc{id("public", "80"): {Name: "svc", Address: "127.0.0.1", Port: p}})
}

func TestExplicit(t *testing.T) {
	clean(t)
	startDaemon(t, "-explicit")
	run(t, "--name", "anon", "-p", "127.0.0.1::80", imgSvc, "80")
	p := freePort(t)
	run(t, "--name", "named", "-p", pub(p, "80"), "-e", "SERVICE_NAME=api", imgSvc, "80")
	p2 := freePort(t)
	run(t, "--name", "oneport", "-p", pub(p2, "80"), "-p", "127.0.0.1::81", "-e", "SERVICE_80_NAME=web", imgSvc, "80", "81")
	expect(t, map[string]svc{
		id("named", "80"):   {Name: "api", Address: "127.0.0.1", Port: p},
		id("oneport", "80"): {Name: "web", Address: "127.0.0.1", Port: p2},
	})
}

// With --net=host there is no port map: exposed ports count as published on
// the same port.
func TestHostNetwork(t *testing.T) {
	clean(t)
	startDaemon(t, "-ip", "127.0.0.1")
	p := freePort(t)
	run(t, "--name", "hostnet", "--net", "host", "--expose", strconv.Itoa(p), imgSvc, strconv.Itoa(p))
	expect(t, map[string]svc{id("hostnet", strconv.Itoa(p)): {Name: "svc", Address: "127.0.0.1", Port: p}})
}

func TestAddressFromLabel(t *testing.T) {
	clean(t)
	startDaemon(t, "-useIpFromLabel", "e2e.address")
	p := freePort(t)
	run(t, "--name", "labelled", "-p", pub(p, "80"), "--label", "e2e.address=10.9.8.7/24", imgSvc, "80")
	expect(t, map[string]svc{id("labelled", "80"): {Name: "svc", Address: "10.9.8.7", Port: p}})
}

func TestTagsTemplate(t *testing.T) {
	clean(t)
	startDaemon(t, "-tags", `prod,img-{{splitIndex -1 "/" .Config.Image}},{{mIndex "tier" .Config.Labels}}`)
	p := freePort(t)
	run(t, "--name", "tagged", "-p", pub(p, "80"), "--label", "tier=front", "-e", "SERVICE_TAGS=own", imgRedis, "80")
	expect(t, map[string]svc{id("tagged", "80"): {Name: "redis", Address: "127.0.0.1", Port: p,
		Tags: []string{"own", "prod", "img-redis:latest", "front"}}})
}

func TestTagsTemplateErrorsAreNotFatal(t *testing.T) {
	clean(t)
	d := startDaemon(t, "-tags", `x-{{.NoSuchField}}`)
	p := freePort(t)
	run(t, "--name", "untagged", "-p", pub(p, "80"), imgSvc, "80")
	expect(t, map[string]svc{id("untagged", "80"): {Name: "svc", Address: "127.0.0.1", Port: p}})
	if !strings.Contains(d.out.String(), "NoSuchField") {
		t.Error("the template error was not logged")
	}
}

func TestImageReferencedByID(t *testing.T) {
	clean(t)
	startDaemon(t)
	imageID := docker(t, "image", "inspect", "-f", "{{.Id}}", imgSvc)
	p1, p2 := freePort(t), freePort(t)
	run(t, "--name", "by-id", "-p", pub(p1, "80"), imageID, "80")
	run(t, "--name", "by-id-compose", "-p", pub(p2, "80"), "--label", "com.docker.compose.service=frontend", imageID[len("sha256:"):len("sha256:")+12], "80")
	expect(t, map[string]svc{
		id("by-id", "80"):         {Name: "by-id", Address: "127.0.0.1", Port: p1},
		id("by-id-compose", "80"): {Name: "frontend", Address: "127.0.0.1", Port: p2},
	})
}
