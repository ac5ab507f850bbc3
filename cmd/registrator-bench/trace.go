package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/internal/testkit"
)

// daemonLog reads the daemon's JSON log (at debug level) and keeps when it
// received each container's start event, every inspection of it (its end
// and how long it took), and when the backend acknowledged each service's
// registration. Lines at show or more severe are passed on to stderr.
type daemonLog struct {
	show logrus.Level

	mu         sync.Mutex
	started    map[string]time.Time // by short container ID
	inspected  map[string][]inspection
	registered map[string]time.Time // by service ID
}

type inspection struct {
	at   time.Time // its end
	took time.Duration
}

func newDaemonLog(level string) *daemonLog {
	show, err := logrus.ParseLevel(level)
	if err != nil {
		show = logrus.InfoLevel
	}
	return &daemonLog{show: show, started: map[string]time.Time{}, inspected: map[string][]inspection{}, registered: map[string]time.Time{}}
}

// read takes the log from r until it ends.
func (l *daemonLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e struct {
			Time      string `json:"time"`
			Level     string `json:"level"`
			Msg       string `json:"msg"`
			Container string `json:"container"`
			Event     string `json:"event"`
			Service   string `json:"service"`
			Action    string `json:"action"`
			Took      string `json:"took"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			os.Stderr.Write(append(sc.Bytes(), '\n'))
			continue
		}
		if lvl, err := logrus.ParseLevel(e.Level); err != nil || lvl <= l.show {
			os.Stderr.Write(append(sc.Bytes(), '\n'))
		}
		// RFC 3339 with any fraction; the daemon's has milliseconds.
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			continue
		}
		at = at.Add(time.Millisecond / 2)
		l.mu.Lock()
		switch {
		case e.Msg == "docker event" && e.Event == "container start":
			l.started[e.Container] = at
		case e.Msg == "inspected":
			if took, err := time.ParseDuration(e.Took); err == nil {
				l.inspected[e.Container] = append(l.inspected[e.Container], inspection{at: at, took: took})
			}
		case e.Action == "register" && e.Level == "info":
			if _, ok := l.registered[e.Service]; !ok {
				l.registered[e.Service] = at
			}
		}
		l.mu.Unlock()
	}
}

// latencyParts is where one container's latency went, in ms, each part
// from the end of the one before; absent where a stamp was missing. The
// daemon's stamps are its log's, to the millisecond, taken as the middle
// of theirs (so a part may come out a fraction of a millisecond below 0).
type latencyParts struct {
	Total float64 `json:"total"`
	// The engine's start event (its own stamp) after State.StartedAt.
	Event *float64 `json:"start_event,omitempty"`
	// The event to the daemon; and, beside it, to the bench's own
	// `docker events` (another subscriber).
	Delivery      *float64 `json:"delivery,omitempty"`
	BenchDelivery *float64 `json:"bench_delivery,omitempty"`
	// From the event to the end of the inspection the registration came
	// from; the registration until the backend acknowledged it.
	Inspect *float64 `json:"inspect,omitempty"`
	Write   *float64 `json:"write,omitempty"`
	// Until the bench's reader saw the service.
	Read *float64 `json:"read,omitempty"`

	// Not a part: how long that inspection took. It may have begun well
	// before the start event, for an earlier event of the container: the
	// engine answered such inspections only once the start was over.
	InspectTook *float64 `json:"inspect_took,omitempty"`
	// Not parts: while the bench measured this container, the longest gap
	// in its own millisecond heartbeat, and how long its threads waited
	// for a CPU; a reader or event stream held up in the bench shows here.
	BenchStall    *float64 `json:"bench_stall,omitempty"`
	BenchRunDelay *float64 `json:"bench_run_delay,omitempty"`
}

// parts splits the latency of one container, started at started and
// visible at visible; ev is its start event, if seen.
func (l *daemonLog) parts(shortID, service string, started, visible time.Time, ev *eventStamp) latencyParts {
	ms := func(from, to time.Time) *float64 {
		if from.IsZero() || to.IsZero() {
			return nil
		}
		v := float64(to.Sub(from).Microseconds()) / 1000
		return &v
	}
	l.mu.Lock()
	received, acked := l.started[shortID], l.registered[service]
	// The inspection the registration came from: the last one to end
	// before it.
	var insp inspection
	for _, i := range l.inspected[shortID] {
		if !acked.IsZero() && !i.at.After(acked) {
			insp = i
		}
	}
	l.mu.Unlock()
	var at, benchAt time.Time
	if ev != nil {
		at, benchAt = ev.at, ev.received
	}
	p := latencyParts{
		Total:         *ms(started, visible),
		Event:         ms(started, at),
		Delivery:      ms(at, received),
		BenchDelivery: ms(at, benchAt),
		Inspect:       ms(received, insp.at),
		Write:         ms(insp.at, acked),
		Read:          ms(acked, visible),
	}
	if !insp.at.IsZero() {
		p.InspectTook = ms(insp.at.Add(-insp.took), insp.at)
	}
	return p
}

// byName is p's figures under their JSON names, but the total.
func (p latencyParts) byName() map[string]*float64 {
	return map[string]*float64{
		"start_event": p.Event, "delivery": p.Delivery, "bench_delivery": p.BenchDelivery,
		"inspect": p.Inspect, "write": p.Write, "read": p.Read,
		"inspect_took": p.InspectTook, "bench_stall": p.BenchStall, "bench_run_delay": p.BenchRunDelay,
	}
}

// split is the median of each figure over ps, leaving out the missing.
func split(ps []latencyParts) map[string]float64 {
	vals := map[string][]float64{}
	for _, p := range ps {
		for k, v := range p.byName() {
			if v != nil {
				vals[k] = append(vals[k], *v)
			}
		}
	}
	out := map[string]float64{}
	for k, vs := range vals {
		out[k] = percentile(vs, 50)
	}
	return out
}

// worst is the one of ps with the largest total.
func worst(ps []latencyParts) latencyParts {
	var w latencyParts
	for _, p := range ps {
		if p.Total > w.Total {
			w = p
		}
	}
	return w
}

// acked waits up to wait for the log of the service's registration, which
// the daemon writes after the backend's answer and the bench may read
// after it saw the service.
func (l *daemonLog) acked(service string, wait time.Duration) {
	waitFor(wait, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, ok := l.registered[service]
		return ok
	})
}

// waitFor asks done every 5 ms until it says yes or wait has passed, and
// tells which.
func waitFor(wait time.Duration, done func() bool) bool {
	return testkit.Eventually(context.Background(), wait, 5*time.Millisecond, func() error {
		if done() {
			return nil
		}
		return errNotYet
	}) == nil
}

var errNotYet = errors.New("not yet")

// heartbeat beats every millisecond in the bench's own process and keeps
// the longest gap between two beats since it was last reset: how long the
// bench itself (its reader, its event stream) was held up, whatever the
// daemon did meanwhile.
type heartbeat struct {
	mu     sync.Mutex
	last   time.Time
	maxGap time.Duration
	done   chan struct{}
}

func startHeartbeat() *heartbeat {
	h := &heartbeat{last: time.Now(), done: make(chan struct{})}
	go func() {
		for {
			select {
			case <-h.done:
				return
			case <-time.After(time.Millisecond):
			}
			now := time.Now()
			h.mu.Lock()
			h.maxGap = max(h.maxGap, now.Sub(h.last))
			h.last = now
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *heartbeat) stop() { close(h.done) }

// reset starts a new window.
func (h *heartbeat) reset() {
	h.mu.Lock()
	h.maxGap, h.last = 0, time.Now()
	h.mu.Unlock()
}

// gap is the longest gap in the window so far, in ms.
func (h *heartbeat) gap() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return float64(max(h.maxGap, time.Since(h.last)).Microseconds()) / 1000
}

// runDelay is how long the bench's threads have waited, runnable, for a
// CPU, in ms (the second field of each /proc/self/task/*/schedstat).
func runDelay() float64 {
	files, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var ns float64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fields := strings.Fields(string(data)); len(fields) >= 2 {
			v, _ := strconv.ParseFloat(fields[1], 64)
			ns += v
		}
	}
	return ns / 1e6
}
