// Command testsvc is the program inside the e2e test images (FROM scratch).
// It listens on the ports given as arguments ("80", "53/udp"): on TCP it
// serves HTTP, GET /health answering 200, or the code in HEALTH_STATUS; on
// UDP it echoes. It exits 0 on SIGTERM (STOP_DELAY after it), and with
// EXIT_CODE after EXIT_AFTER.
//
// For Docker health: `testsvc -probe` (the health image's HEALTHCHECK)
// succeeds while the file /health-state says "healthy" and prints what it
// says; `testsvc -probe-quiet` does the same and prints nothing; `testsvc
// -set <state>` (through docker exec) writes it.
package main

import (
	"fmt"
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
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
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
