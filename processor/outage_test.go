package processor_test

import (
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// proxy is a TCP proxy that can cut every connection and refuse new ones,
// standing in for a ClickHouse server that goes down and comes back.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]bool
}

func newProxy(t *testing.T, upstream string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close(); c.Close() }()
		go func() { io.Copy(c, u); u.Close(); c.Close() }()
	}
}

// setDown cuts (true) or restores (false) the way to the server.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// TestClickHouseOutage cuts the way to ClickHouse in the middle of the
// stream. The processor must retry without committing anything past what
// is stored, report itself not ready, and once ClickHouse is back catch up
// with the tables equal to those of an uninterrupted run.
func TestClickHouseOutage(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	e := newEnv(t)
	stream := workload(rng, 300)
	half := len(stream) / 2
	px := newProxy(t, testenv.ClickHouse(t).Addr)
	db := e.ch
	db.Addr = px.ln.Addr().String()
	cfg := e.config("outage-" + testenv.RandomSuffix())
	_, p, reg := e.start(cfg, db)
	srv := newHTTPServer(t, p.Handler(reg))
	ready := func() bool {
		resp, err := noKeepAlive.Get(srv + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	count := func() int {
		n, _ := strconv.Atoi(strings.TrimSpace(e.query(e.ch.Database, "SELECT count() FROM events")))
		return n
	}
	e.produce(stream[:half])
	e.waitDone(cfg.GroupID, 60*time.Second)
	waitFor(t, 30*time.Second, "ready", ready)
	before := e.endOffsets()

	px.setDown(true)
	stored := count()
	e.produce(stream[half:])
	failures := func() float64 {
		return sumCounter(t, reg, "shoptrail_processor_insert_failures_total") + sumCounter(t, reg, "shoptrail_processor_sink_retries_total")
	}
	waitFor(t, 30*time.Second, "failed inserts while ClickHouse is down", func() bool { return failures() >= 2 })
	waitFor(t, 30*time.Second, "not ready while ClickHouse is down", func() bool { return !ready() })
	committed, err := e.committed(cfg.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	for part, off := range committed {
		if off > before[part] {
			t.Errorf("partition %d committed %d while ClickHouse was down, past the %d stored before", part, off, before[part])
		}
	}
	if n := count(); n != stored {
		t.Errorf("events grew from %d to %d while ClickHouse was down", stored, n)
	}

	px.setDown(false)
	e.waitDone(cfg.GroupID, 90*time.Second)
	waitFor(t, 30*time.Second, "ready again", ready)
	refDB, _ := e.database()
	refCfg := e.config("ref-" + testenv.RandomSuffix())
	e.start(refCfg, refDB)
	e.waitDone(refCfg.GroupID, 60*time.Second)
	e.compareTables(e.ch.Database, refDB.Database)
}

// sumCounter sums the series of a counter in reg.
func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
