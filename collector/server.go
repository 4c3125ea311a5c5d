package collector

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/collector/beacon"
	"github.com/shoptrail/shoptrail/collector/useragent"
)

// Options are the collector's collaborators.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the collector's metrics; Gatherer serves them on
	// /metrics. A nil Registerer means a fresh registry (both).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Producer overrides the Kafka producer (tests); it is closed by Run.
	Producer Producer
	// Beacon serves the website beacon at /beacon.js and /s.js (a name no
	// ad-blocking list matches), also under each path prefix. The default
	// is collector/beacon's Handler.
	Beacon http.Handler
}

// Server is the collector's HTTP service.
type Server struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	gatherer prometheus.Gatherer
	producer Producer
	kafka    *groupProducer // nil when Options.Producer is set
	beacon   http.Handler
	ua       *useragent.Classifier
	budget   budget
	ipLimit  *limiter[netip.Addr]
	keyLimit *limiter[string]
	cleaners map[*Site]*cleaner
	// basicKeys maps the Authorization header an SDK sends for each write
	// key ("Basic " + base64(key + ":")) to the key: most requests are
	// authenticated by a map lookup, without decoding.
	basicKeys map[string]string
	rejects   rejectSummary
	now       func() time.Time

	shuttingDown chan struct{}
	closeOnce    sync.Once
}

// New returns a collector logging to log, with its own metrics registry;
// it connects to Kafka when it runs.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	return NewWithOptions(cfg, Options{Logger: log})
}

// NewWithOptions returns a collector with the given collaborators.
func NewWithOptions(cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "collector")
	reg, gat := opts.Registerer, opts.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	if gat == nil {
		gat = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:          cfg,
		log:          log,
		m:            newMetrics(reg),
		gatherer:     gat,
		producer:     opts.Producer,
		beacon:       cmp.Or[http.Handler](opts.Beacon, beacon.Handler()),
		ua:           useragent.NewClassifier(0),
		budget:       budget{limit: cfg.MaxInflightBytes},
		ipLimit:      newLimiter(cfg.IPRate, cfg.IPBurst, hashAddr),
		keyLimit:     newLimiter(cfg.KeyRate, cfg.KeyBurst, hashString),
		cleaners:     map[*Site]*cleaner{},
		basicKeys:    map[string]string{},
		now:          time.Now,
		shuttingDown: make(chan struct{}),
	}
	for _, site := range cfg.Sites.List() {
		c := &cleaner{extra: map[string]bool{}}
		for _, p := range append(cfg.QueryParams, site.QueryParams...) {
			c.extra[strings.ToLower(p)] = true
		}
		s.cleaners[site] = c
		for _, k := range site.WriteKeys {
			s.basicKeys["Basic "+base64.StdEncoding.EncodeToString([]byte(k+":"))] = k
		}
		if site.AnyOrigin() {
			log.Warn("site allows every browser origin (allowedOrigins \"*\"): any web page can send events with its write key", "site", site.ID)
		} else if site.NoOrigin() {
			log.Info("site allows no browser origin: only server-side SDKs can send", "site", site.ID)
		}
	}
	if s.producer == nil {
		codec, _ := compressionCodec(cfg.Compression)
		s.kafka = newGroupProducer(cfg.Brokers, codec, cfg.ProduceTimeout, cfg.Linger, log, s.m)
		s.producer = s.kafka
	}
	s.ua.Scrub = func(ua string) string { return redactText(ua, textRules) }
	s.m.inflightBytes.Set(0)
	evictions := func(limit string, n func() uint64) {
		promauto.With(reg).NewCounterFunc(prometheus.CounterOpts{
			Name:        "shoptrail_collector_rate_limit_evictions_total",
			Help:        "Rate-limit buckets evicted for a new key when the limiter held its most keys.",
			ConstLabels: prometheus.Labels{"limit": limit},
		}, func() float64 { return float64(n()) })
	}
	if s.ipLimit != nil {
		evictions("ip", s.ipLimit.evicted.Load)
	}
	if s.keyLimit != nil {
		evictions("key", s.keyLimit.evicted.Load)
	}
	return s, nil
}

// Ready tells whether the collector can deliver: Kafka acknowledged a
// produce, and the last one succeeded.
func (s *Server) Ready() bool {
	if s.kafka == nil {
		return true
	}
	return s.kafka.Ready()
}

// Handler returns the collector's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// The ingest routes are also found by one map lookup before the mux
	// (post, below): matching its patterns was 1.5 % of the collector's
	// CPU under single events.
	post := map[string]http.HandlerFunc{}
	handlePost := func(path string, h http.HandlerFunc) {
		mux.HandleFunc("POST "+path, h)
		post[path] = h
	}
	prefixes := append([]string{"/v1"}, s.cfg.PathPrefixes...)
	for _, p := range prefixes {
		// analytics.js (analytics-next) posts to the calls' first letters:
		// /v1/t, /v1/p, /v1/i, ... and batches to /v1/b.
		batch := s.ingestHandler("", "batch")
		handlePost(p+"/batch", batch)
		handlePost(p+"/b", batch)
		for _, t := range []string{shoptrail.TypeTrack, shoptrail.TypePage, shoptrail.TypeScreen,
			shoptrail.TypeIdentify, shoptrail.TypeGroup, shoptrail.TypeAlias} {
			h := s.ingestHandler(t, t)
			handlePost(p+"/"+t, h)
			handlePost(p+"/"+t[:1], h)
		}
		mux.HandleFunc("GET "+p+"/p.gif", s.pixelHandler)
		mux.HandleFunc("GET "+p+"/id", s.idHandler)
		mux.HandleFunc("OPTIONS "+p+"/", s.preflight)
		// analytics.js's own telemetry (counters of its calls and errors):
		// taken and dropped, so that pages log no CORS errors.
		mux.HandleFunc("POST "+p+"/m", s.sdkMetrics)
		// RudderStack's browser SDK in beacon mode: sendBeacon to
		// <dataPlaneUrl>/beacon/v1/batch?writeKey=...
		handlePost("/beacon"+p+"/batch", batch)
		mux.HandleFunc("OPTIONS /beacon"+p+"/", s.preflight)
		if p != "/v1" {
			mux.Handle("GET "+p+beacon.ScriptPath, s.beacon)
			mux.Handle("GET "+p+beacon.NeutralScriptPath, s.beacon)
		}
	}
	// Jitsu's SDKs post one Segment-shaped event to /api/s/<type> (and
	// /api/s/s2s/<type> from servers), the write key in X-Write-Key.
	for _, t := range []string{shoptrail.TypeTrack, shoptrail.TypePage, shoptrail.TypeScreen,
		shoptrail.TypeIdentify, shoptrail.TypeGroup, shoptrail.TypeAlias} {
		h := s.ingestHandler(t, t)
		handlePost("/api/s/"+t, h)
		handlePost("/api/s/s2s/"+t, h)
	}
	mux.HandleFunc("OPTIONS /api/s/", s.preflight)
	// RudderStack's browser SDK reports its own errors and metrics to
	// <dataPlaneUrl>/rsaMetrics when its source settings enable it.
	mux.HandleFunc("POST /rsaMetrics", s.sdkMetrics)
	mux.HandleFunc("OPTIONS /rsaMetrics", s.preflight)
	mux.Handle("GET "+beacon.ScriptPath, s.beacon)
	mux.Handle("GET "+beacon.NeutralScriptPath, s.beacon)
	mux.HandleFunc("/", s.notFound)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &routes{post: post, mux: mux}
}

// routes serves the ingest routes by their exact path (as the mux would:
// a clean path matching one of its POST patterns) and the rest through the
// mux.
type routes struct {
	post map[string]http.HandlerFunc
	mux  *http.ServeMux
}

func (rt *routes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if h, ok := rt.post[r.URL.Path]; ok {
			h(w, r)
			return
		}
	}
	rt.mux.ServeHTTP(w, r)
}

// maxHeaderBytes is the most a request line and its headers may take.
const maxHeaderBytes = 16 << 10

// Run serves HTTP on cfg.Addr until ctx is done, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.producer.Close()
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests use port 0). Shutdown
// order: stop accepting connections, let in-flight requests finish (each
// waits for Kafka's acknowledgement of its events), then close the
// producer, which sends whatever is still queued.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: min(5*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout + s.cfg.ProduceTimeout + 5*time.Second,
		IdleTimeout:       60 * time.Second,
		// net/http reads up to 8 KiB more than MaxHeaderBytes before it
		// answers 431 (4 KiB of slop plus its 4 KiB read buffer, measured
		// by TestHeaderLimit): 8 KiB here is the 16 KiB the README states.
		MaxHeaderBytes: maxHeaderBytes - 8<<10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.heartbeat(hbCtx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.summarizeRejects(hbCtx, s.cfg.RejectSummaryEvery) }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(newLimitListener(ln, s.cfg.MaxConnections)) }()
	s.log.Info("collector listening", "addr", ln.Addr().String())
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("collector HTTP server: %w", err)
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout+s.cfg.ProduceTimeout+5*time.Second)
		err = srv.Shutdown(shutCtx) // stop accepting, wait for in-flight requests
		cancel()
		<-errc
	}
	s.closeOnce.Do(func() { close(s.shuttingDown) })
	stopHeartbeat()
	wg.Wait()
	if cerr := s.producer.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.log.Info("collector stopped")
	return err
}

// heartbeat keeps readiness true to its word: when nothing was produced for
// a while (or the last produce failed), it produces a small message to the
// heartbeat topic, and its outcome sets readiness.
func (s *Server) heartbeat(ctx context.Context) {
	if s.kafka == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if !s.kafka.Ready() || s.kafka.SinceOK() > 3*time.Second {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := s.kafka.Produce(pctx, []kafka.Message{{
				Topic: s.cfg.HeartbeatTopic,
				Key:   []byte("collector"),
				Value: fmt.Appendf(nil, `{"at":%q}`, time.Now().UTC().Format(time.RFC3339Nano)),
			}})
			cancel()
			if err != nil && ctx.Err() == nil {
				s.kafka.setHealthy(false)
				s.log.Debug("heartbeat failed", "err", err)
			}
		}
		ready := s.kafka.Ready()
		if ready {
			s.m.ready.Set(1)
		} else {
			s.m.ready.Set(0)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	select {
	case <-s.shuttingDown:
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"shutting down"}` + "\n"))
		return
	default:
	}
	if !s.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"not ready","error":"Kafka has not acknowledged a produce recently"}` + "\n"))
		return
	}
	w.Write([]byte(`{"status":"ready"}` + "\n"))
}

// clientAddr is the client's address: the connection's peer, or, when the
// peer is a trusted proxy, the rightmost X-Forwarded-For address that is
// not one.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if len(s.cfg.TrustedProxies) == 0 || !s.trusted(a) {
		return a
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			h, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return a
			}
			h = h.Unmap()
			if !s.trusted(h) {
				return h
			}
			a = h
		}
	}
	return a
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// anonymize returns what is kept of a client address (privacy.ip):
// truncated (IPv4 /24, IPv6 /48), nothing, or all of it.
func (s *Server) anonymize(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	switch s.cfg.IPMode {
	case "drop":
		return ""
	case "raw":
		return a.String()
	}
	if a.Is4() {
		b := a.As4()
		b[3] = 0
		return netip.AddrFrom4(b).String()
	}
	b := a.As16()
	clear(b[6:])
	return netip.AddrFrom16(b).String()
}

// anonymizeString anonymizes a context.ip sent by a server-side library on
// behalf of its visitor; an unparsable one is replaced by the request's.
func (s *Server) anonymizeString(ip string, rq *request) string {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return rq.ip
	}
	return s.anonymize(a.Unmap())
}
