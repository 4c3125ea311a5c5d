// Package loadgen is the collector's load generator: realistic Segment
// events (about 400 bytes each, unique message ids) sent as single-event
// requests or batches, as fast as possible (closed loop) or at a fixed rate
// (open loop, latency measured from each request's scheduled time, so a
// stalled collector cannot hide its queueing). It reports events/s, latency
// percentiles, status codes, and the CPU the collector spent per event (from
// its /metrics process_cpu_seconds_total).
//
// It only targets loopback addresses and always stops after its duration.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is one load run.
type Config struct {
	// URL is the collector's base URL, e.g. http://127.0.0.1:8080; it
	// must be a loopback address.
	URL      string
	WriteKey string
	// Batch is the number of events per request: 1 posts to /v1/track,
	// more to /v1/batch.
	Batch int
	// Concurrency is the number of connections, each with one request in
	// flight.
	Concurrency int
	// Rate is the target of events per second; 0 sends as fast as the
	// collector answers.
	Rate float64
	// Duration bounds the run (at most 10 minutes); Warmup runs before it,
	// unmeasured.
	Duration, Warmup time.Duration
	// Seed varies the message ids between runs (a run's ids are unique).
	Seed int64
	// BrokerPID, when not 0, is a local broker process whose CPU time is
	// reported too.
	BrokerPID int
	// CollectorPID, when not 0, is the collector's process on this
	// machine: its CPU time and resident memory are read from /proc
	// instead of its /metrics, so that sampling them costs the collector
	// nothing (a scrape every 250 ms, gzip-compressed, was 2 % of its CPU
	// under single events, by its profile).
	CollectorPID int
}

// Result is what a run measured.
type Result struct {
	Config   Config
	Elapsed  time.Duration
	Requests int64
	Events   int64 // events in requests answered 2xx
	Status   map[int]int64
	Errors   int64 // transport errors
	P50, P90 time.Duration
	P99, Max time.Duration
	// CollectorCPU is the collector process's CPU time during the run
	// (0 when its /metrics has no process_cpu_seconds_total); SelfCPU this
	// process's (the generator, and the broker when it runs in-process);
	// MachineCPU all CPUs' busy time (/proc/stat).
	CollectorCPU, SelfCPU, MachineCPU, BrokerCPU time.Duration
	// ServerP50 and ServerP99 are the collector's own view of its answer
	// time for the run's requests (interpolated from its
	// request_duration_seconds histogram): the time from reading the
	// request to answering, without the network and the generator's lag.
	ServerP50, ServerP99 time.Duration
	// SelfName says what SelfCPU covers besides the load generator (e.g.
	// "+broker" when the broker runs in its process).
	SelfName string
	// CollectorMaxRSS is the largest resident memory of the collector
	// sampled during the run (process_resident_memory_bytes), 0 unknown.
	CollectorMaxRSS int64
}

// EventsPerSecond is the rate of accepted events.
func (r *Result) EventsPerSecond() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

func perEvent(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

func (r *Result) String() string {
	mode := "single-event requests"
	if r.Config.Batch > 1 {
		mode = fmt.Sprintf("%d-event batches", r.Config.Batch)
	}
	rate := "max rate"
	if r.Config.Rate > 0 {
		rate = fmt.Sprintf("target %.0f events/s", r.Config.Rate)
	}
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var st []string
	for _, c := range codes {
		st = append(st, fmt.Sprintf("%d:%d", c, r.Status[c]))
	}
	broker := ""
	if r.Config.BrokerPID != 0 {
		broker = fmt.Sprintf(" broker %.1f µs,", perEvent(r.BrokerCPU, r.Events))
	}
	return fmt.Sprintf("%s, %s, %d connections, %v:\n"+
		"  %9.0f events/s  (%d events, %d requests, status %s, transport errors %d)\n"+
		"  latency p50 %v  p90 %v  p99 %v  max %v  (collector's own: p50 %v  p99 %v)\n"+
		"  CPU per event: collector %.1f µs, load generator%s %.1f µs,%s whole machine %.1f µs; collector memory at most %d MiB",
		mode, rate, r.Config.Concurrency, r.Elapsed.Round(time.Millisecond),
		r.EventsPerSecond(), r.Events, r.Requests, strings.Join(st, " "), r.Errors,
		r.P50.Round(10*time.Microsecond), r.P90.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond),
		r.ServerP50.Round(10*time.Microsecond), r.ServerP99.Round(10*time.Microsecond),
		perEvent(r.CollectorCPU, r.Events), r.SelfName, perEvent(r.SelfCPU, r.Events), broker, perEvent(r.MachineCPU, r.Events), r.CollectorMaxRSS>>20)
}

// CheckLoopback refuses targets that are not on this machine's loopback.
func CheckLoopback(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("loadgen: url %q: want http://127.0.0.1:PORT", rawURL)
	}
	host := u.Hostname()
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("loadgen: cannot resolve %q", host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("loadgen: %s is not a loopback address: the load generator only targets this machine", host)
		}
	}
	return u, nil
}

// Run sends load as cfg says and reports it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	u, err := CheckLoopback(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Batch < 1 {
		cfg.Batch = 1
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Duration <= 0 || cfg.Duration > 10*time.Minute {
		return nil, errors.New("loadgen: duration must be between 0 and 10 minutes")
	}
	path := "/v1/batch"
	if cfg.Batch == 1 {
		path = "/v1/track"
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	auth := "Basic " + basic(cfg.WriteKey)

	var (
		stop     atomic.Bool
		measured atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      []time.Duration
		res      = &Result{Config: cfg, Status: map[int]int64{}}
	)
	interval := time.Duration(0) // per worker, between requests
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Batch) * float64(cfg.Concurrency) / cfg.Rate)
	}
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			g := newGenerator(cfg.Seed, w, cfg.Batch)
			c := &conn{addr: addr}
			defer c.close()
			var my []time.Duration
			status := map[int]int64{}
			var reqs, events, errs int64
			next := time.Now().Add(time.Duration(w) * interval / time.Duration(cfg.Concurrency))
			for !stop.Load() && ctx.Err() == nil {
				sched := time.Now()
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					sched = next
					next = next.Add(interval)
				}
				body := g.body()
				code, err := c.post(path, u.Host, auth, body)
				if !measured.Load() {
					continue
				}
				d := time.Since(sched)
				reqs++
				if err != nil {
					errs++
					continue
				}
				status[code]++
				if code/100 == 2 {
					events += int64(cfg.Batch)
				}
				my = append(my, d)
			}
			mu.Lock()
			lat = append(lat, my...)
			for k, v := range status {
				res.Status[k] += v
			}
			res.Requests += reqs
			res.Events += events
			res.Errors += errs
			mu.Unlock()
		}(w)
	}
	if cfg.Warmup > 0 {
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
		}
	}
	route := "batch"
	if cfg.Batch == 1 {
		route = "track"
	}
	stats := func() (time.Duration, int64, error) { return collectorStats(cfg.URL) }
	if cfg.CollectorPID != 0 {
		stats = func() (time.Duration, int64, error) {
			return processCPU(cfg.CollectorPID), processRSS(cfg.CollectorPID), nil
		}
	}
	cpu0, _, _ := stats()
	h0, _ := collectorHistogram(cfg.URL, route)
	self0, mach0, broker0 := selfCPU(), machineCPU(), processCPU(cfg.BrokerPID)
	measured.Store(true)
	t0 := time.Now()
	end := time.After(cfg.Duration)
	tick := time.NewTicker(250 * time.Millisecond)
sample:
	for {
		select {
		case <-end:
			break sample
		case <-ctx.Done():
			break sample
		case <-tick.C:
			if _, rss, err := stats(); err == nil {
				res.CollectorMaxRSS = max(res.CollectorMaxRSS, rss)
			}
		}
	}
	tick.Stop()
	res.Elapsed = time.Since(t0)
	cpu1, _, _ := stats()
	if h1, err := collectorHistogram(cfg.URL, route); err == nil {
		res.ServerP50, res.ServerP99 = h1.sub(h0).quantile(0.5), h1.sub(h0).quantile(0.99)
	}
	res.CollectorCPU, res.SelfCPU, res.MachineCPU = cpu1-cpu0, selfCPU()-self0, machineCPU()-mach0
	res.BrokerCPU = processCPU(cfg.BrokerPID) - broker0
	stop.Store(true)
	wg.Wait()
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		res.P50, res.P90, res.P99, res.Max = lat[n*50/100], lat[n*90/100], lat[n*99/100], lat[n-1]
	}
	return res, ctx.Err()
}

// conn is a lean HTTP/1.1 client connection with one request in flight,
// so that the generator spends little of the shared CPUs (like wrk); it
// reads every response fully and reconnects when the server closes.
type conn struct {
	addr     string
	c        net.Conn
	r        *bufio.Reader
	req      []byte
	deadline time.Time // of c: renewed when less than 20 s is left, not per request
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
	}
}

func (c *conn) post(path, host, auth string, body []byte) (int, error) {
	for attempt := 0; ; attempt++ {
		if c.c == nil {
			nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
			if err != nil {
				return 0, err
			}
			c.c, c.r = nc, bufio.NewReaderSize(nc, 4096)
			c.deadline = time.Time{}
		}
		c.req = append(c.req[:0], "POST "...)
		c.req = append(c.req, path...)
		c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
		c.req = append(c.req, host...)
		c.req = append(c.req, "\r\nUser-Agent: shoptrail-loadgen\r\nContent-Type: application/json\r\nAuthorization: "...)
		c.req = append(c.req, auth...)
		c.req = append(c.req, "\r\nContent-Length: "...)
		c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
		c.req = append(c.req, "\r\n\r\n"...)
		c.req = append(c.req, body...)
		// A stuck request fails within 20-30 s; setting a deadline per
		// request cost the generator a timer update each time.
		if now := time.Now(); c.deadline.Sub(now) < 20*time.Second {
			c.deadline = now.Add(30 * time.Second)
			c.c.SetDeadline(c.deadline)
		}
		code, err := c.exchange()
		if err == nil {
			return code, nil
		}
		c.c.Close()
		c.c = nil
		if attempt > 0 {
			return 0, err
		}
	}
}

func (c *conn) exchange() (int, error) {
	if _, err := c.c.Write(c.req); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, err
	}
	length, closing := -1, false
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok {
			v = bytes.TrimSpace(v)
			switch {
			case bytes.EqualFold(k, []byte("Content-Length")):
				length, _ = strconv.Atoi(string(v))
			case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
				closing = true
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, err
	}
	if closing {
		c.c.Close()
		c.c = nil
	}
	return code, nil
}

func basic(user string) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	src := []byte(user + ":")
	var out []byte
	for i := 0; i < len(src); i += 3 {
		var b [3]byte
		n := copy(b[:], src[i:])
		v := uint(b[0])<<16 | uint(b[1])<<8 | uint(b[2])
		out = append(out, enc[v>>18&63], enc[v>>12&63])
		if n > 1 {
			out = append(out, enc[v>>6&63])
		} else {
			out = append(out, '=')
		}
		if n > 2 {
			out = append(out, enc[v&63])
		} else {
			out = append(out, '=')
		}
	}
	return string(out)
}

// generator makes request bodies of realistic events: page views and
// E-commerce track events with a full browser context (~400 bytes each).
type generator struct {
	seed   int64
	worker int
	batch  int
	n      int64
	buf    []byte
}

func newGenerator(seed int64, worker, batch int) *generator {
	return &generator{seed: seed, worker: worker, batch: batch}
}

const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// event appends the generator's next event, without allocating (the
// generator shares the CPUs with what it measures).
func (g *generator) event(b []byte) []byte {
	g.n++
	b = append(b, `{"type":"track","event":"Product Viewed","messageId":"lg-`...)
	b = strconv.AppendInt(b, g.seed, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(g.worker), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, g.n, 10)
	b = append(b, `","anonymousId":"v-`...)
	b = strconv.AppendInt(b, (g.n*7919+int64(g.worker))%50000, 10)
	b = append(b, `","timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","properties":{"product_id":"p-`...)
	b = strconv.AppendInt(b, g.n%1000, 10)
	b = append(b, `","price":19.9,"currency":"CNY"},"context":{"page":{"url":"https://shop.example/products/p-`...)
	b = strconv.AppendInt(b, g.n%1000, 10)
	b = append(b, `?utm_source=baidu&utm_medium=cpc","path":"/products","referrer":"https://www.baidu.com/s","title":"Resistor 10k"},"userAgent":"`...)
	b = append(b, userAgent...)
	b = append(b, `","locale":"zh-CN","library":{"name":"loadgen","version":"1"}}}`...)
	return b
}

func (g *generator) body() []byte {
	b := g.buf[:0]
	if g.batch == 1 {
		b = g.event(b)
	} else {
		b = append(b, `{"batch":[`...)
		for i := 0; i < g.batch; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.event(b)
		}
		b = append(b, `],"sentAt":"`...)
		b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `"}`...)
	}
	g.buf = b
	return b
}

// collectorStats reads process_cpu_seconds_total and
// process_resident_memory_bytes from the collector's /metrics.
func collectorStats(base string) (cpu time.Duration, rss int64, err error) {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(strings.TrimRight(base, "/") + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, 0, err
	}
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "process_cpu_seconds_total "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			cpu, found = time.Duration(f*float64(time.Second)), true
		}
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			rss = int64(f)
		}
	}
	if !found {
		return 0, 0, errors.New("no process_cpu_seconds_total")
	}
	return cpu, rss, nil
}

// histogram is a cumulative Prometheus histogram: upper bounds (seconds)
// and counts.
type histogram struct {
	le     []float64
	counts []float64
}

// collectorHistogram reads the collector's request duration histogram of
// route for status 200.
func collectorHistogram(base, route string) (histogram, error) {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(strings.TrimRight(base, "/") + "/metrics")
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return histogram{}, err
	}
	var h histogram
	prefix := `shoptrail_collector_request_duration_seconds_bucket{code="200",route="` + route + `",le="`
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		le, count, _ := strings.Cut(rest, `"} `)
		l, err1 := strconv.ParseFloat(le, 64)
		c, err2 := strconv.ParseFloat(strings.TrimSpace(count), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		h.le, h.counts = append(h.le, l), append(h.counts, c)
	}
	if len(h.le) == 0 {
		return h, errors.New("no request duration histogram")
	}
	return h, nil
}

func (h histogram) sub(o histogram) histogram {
	out := histogram{le: h.le, counts: slices.Clone(h.counts)}
	if len(o.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile interpolates linearly within the bucket holding q.
func (h histogram) quantile(q float64) time.Duration {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return 0
	}
	rank := q * h.counts[len(h.counts)-1]
	lo, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			hi := h.le[i]
			if math.IsInf(hi, 1) {
				hi = lo
			}
			f := 0.0
			if c > below {
				f = (rank - below) / (c - below)
			}
			return time.Duration((lo + f*(hi-lo)) * float64(time.Second))
		}
		lo, below = h.le[i], c
	}
	return time.Duration(lo * float64(time.Second))
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time of process pid (/proc/pid/stat), 0 unknown.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100
}

// processRSS is the resident memory of process pid (/proc/pid/statm), 0
// unknown.
func processRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// machineCPU is the busy time of all CPUs from /proc/stat (jiffies of
// 10 ms), 0 where there is none.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, s := range f[1:8] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}
