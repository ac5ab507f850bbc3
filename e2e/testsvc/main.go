// Command testsvc is the program inside the e2e test images (FROM scratch).
// It listens on the ports given as arguments ("80", "53/udp"): on TCP it
// serves HTTP, GET /health answering 200, or the code in HEALTH_STATUS (401
// without the header HEALTH_HEADER names, "Name: value"; 421 over a TLS
// server name other than HEALTH_SNI), over TLS with TLS set; on
// UDP it echoes. It exits 0 on SIGTERM (STOP_DELAY after it), and with
// EXIT_CODE after EXIT_AFTER.
//
// For Docker health: `testsvc -probe` (the health image's HEALTHCHECK)
// succeeds while the file /health-state says "healthy" and prints what it
// says; `testsvc -probe-quiet` does the same and prints nothing; `testsvc
// -set <state>` (through docker exec) writes it.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const stateFile = "/health-state"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-probe":
			b, _ := os.ReadFile(stateFile)
			state := strings.TrimSpace(string(b))
			fmt.Println("probe says", cmpOr(state, "nothing yet"))
			if state != "healthy" {
				os.Exit(1)
			}
			os.Exit(0)
		case "-probe-quiet": // as -probe, printing nothing: `curl -fs`, most probes
			b, _ := os.ReadFile(stateFile)
			if strings.TrimSpace(string(b)) != "healthy" {
				os.Exit(1)
			}
			os.Exit(0)
		case "-set":
			if err := os.WriteFile(stateFile, []byte(os.Args[2]), 0o644); err != nil {
				fail(err)
			}
			os.Exit(0)
		}
	}
	status := http.StatusOK
	if s := os.Getenv("HEALTH_STATUS"); s != "" {
		status, _ = strconv.Atoi(s)
	}
	mux := http.NewServeMux()
	// HEALTH_HEADER="Name: value": /health answers 401 to a request
	// without that header.
	needName, needValue, _ := strings.Cut(os.Getenv("HEALTH_HEADER"), ":")
	// HEALTH_SNI=name: /health answers 421 to a request whose TLS server
	// name is not name.
	needSNI := os.Getenv("HEALTH_SNI")
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if needName != "" && r.Header.Get(needName) != strings.TrimSpace(needValue) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, "missing header", needName)
			return
		}
		if needSNI != "" && (r.TLS == nil || r.TLS.ServerName != needSNI) {
			w.WriteHeader(http.StatusMisdirectedRequest)
			fmt.Fprintln(w, "server name is not", needSNI)
			return
		}
		w.WriteHeader(status)
		fmt.Fprintln(w, "health", status)
	})
	for _, arg := range os.Args[1:] {
		port, proto, _ := strings.Cut(arg, "/")
		switch proto {
		case "", "tcp":
			l, err := net.Listen("tcp", ":"+port)
			if err != nil {
				fail(err)
			}
			if os.Getenv("TLS") != "" { // HTTPS with a self-signed certificate
				l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{selfSigned()}})
			}
			go http.Serve(l, mux)
		case "udp":
			c, err := net.ListenPacket("udp", ":"+port)
			if err != nil {
				fail(err)
			}
			go echo(c)
		default:
			fail(fmt.Errorf("bad port %q", arg))
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var exit <-chan time.Time
	if d, err := time.ParseDuration(os.Getenv("EXIT_AFTER")); err == nil {
		exit = time.After(d)
	}
	select {
	case <-sig:
		// STOP_DELAY: a graceful shutdown that takes this long.
		if d, err := time.ParseDuration(os.Getenv("STOP_DELAY")); err == nil {
			time.Sleep(d)
		}
		os.Exit(0)
	case <-exit:
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		os.Exit(code)
	}
}

// selfSigned is a certificate for any name, made at start.
func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testsvc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"testsvc"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		fail(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func echo(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		c.WriteTo(buf[:n], addr)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testsvc:", err)
	os.Exit(1)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
