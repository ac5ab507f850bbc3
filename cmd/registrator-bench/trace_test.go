package main

import (
	"strings"
	"testing"
	"time"
)

// A daemon's log of one container: an inspection for its create event that
// the engine answered only after the start, a second one for the start
// event after the registration, and a deregistration of another service.
const traceLog = `{"container":"abc","event":"container create","level":"debug","msg":"docker event","time":"2026-11-24T10:00:00.100Z"}
{"container":"abc","event":"container start","level":"debug","msg":"docker event","time":"2026-11-24T10:00:01.003Z"}
{"container":"abc","level":"debug","msg":"inspected","took":"905ms","time":"2026-11-24T10:00:01.005Z"}
{"action":"register","container":"abc","level":"info","msg":"registered svc at 172.17.0.2:80","service":"h:c:80","time":"2026-11-24T10:00:01.011Z"}
{"container":"abc","level":"debug","msg":"inspected","took":"2ms","time":"2026-11-24T10:00:01.014Z"}
{"action":"register","container":"abc","level":"info","msg":"registered svc at 172.17.0.2:80","service":"h:c:80","time":"2026-11-24T10:00:02.000Z"}
not json
`

func TestDaemonLogParts(t *testing.T) {
	l := newDaemonLog("error")
	l.read(strings.NewReader(traceLog))
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	at := func(ms float64) time.Time { return base.Add(time.Duration(ms * float64(time.Millisecond))) }
	ev := &eventStamp{at: at(1001), received: at(1002)}
	p := l.parts("abc", "h:c:80", at(995), at(1013), ev)

	want := map[string]float64{
		"start_event": 6, "delivery": 2.5, "bench_delivery": 1,
		"inspect": 2, "write": 6, "read": 1.5, "inspect_took": 905,
	}
	got := p.byName()
	for k, w := range want {
		if v := got[k]; v == nil {
			t.Errorf("%s missing, want %v", k, w)
		} else if *v != w {
			t.Errorf("%s = %v, want %v", k, *v, w)
		}
	}
	if p.Total != 18 {
		t.Errorf("total = %v, want 18", p.Total)
	}
	if sum := *p.Event + *p.Delivery + *p.Inspect + *p.Write + *p.Read; sum != p.Total {
		t.Errorf("the parts add up to %v, not the total %v", sum, p.Total)
	}

	// A container the log never mentions: only what the bench saw.
	q := l.parts("zzz", "h:z:80", at(995), at(1013), nil)
	if q.Total != 18 || q.Event != nil || q.Delivery != nil || q.Inspect != nil || q.Write != nil || q.Read != nil {
		t.Errorf("unknown container: %+v", q)
	}
}

func TestSplitAndWorst(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	ps := []latencyParts{
		{Total: 10, Event: f(4), Write: f(5)},
		{Total: 30, Event: f(6)},
		{Total: 20, Event: f(5), Write: f(7)},
	}
	s := split(ps)
	if s["start_event"] != 5 || s["write"] != 5 { // nearest rank
		t.Errorf("split = %v, want start_event 5, write 5", s)
	}
	if _, ok := s["read"]; ok {
		t.Errorf("split has a read with no samples: %v", s)
	}
	if w := worst(ps); w.Total != 30 {
		t.Errorf("worst = %v, want the total of 30", w.Total)
	}
}
