package monitor

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestServerServesUntilItsContextEnds(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := New()
	srv, err := Listen("127.0.0.1:0", m.Handler(), logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	base := "http://" + srv.l.Addr().String()
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %s", resp.Status)
	}
	resp, err = http.Get(base + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not connected to the Docker event stream") {
		t.Fatalf("/ready before the event stream: %s %s", resp.Status, body)
	}
	m.DockerConnected()
	resp, err = http.Get(base + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/ready with the stream and no backend: %s", resp.Status)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after its context ended: %v", err)
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Fatal("still serving after Serve returned")
	}
}

func TestListenRefusesAnAddressInUse(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := Listen("127.0.0.1:0", New().Handler(), logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.l.Close()
	if _, err := Listen(srv.l.Addr().String(), New().Handler(), logrus.NewEntry(log)); err == nil {
		t.Fatal("a second Listen on the same address succeeded")
	}
}
