// Package collector is the HTTP ingest edge: it accepts events in the Segment
// HTTP Tracking API format (and a 1x1 pixel), authenticates the site by its
// write key, validates and enriches each event and produces it to Kafka,
// answering 2xx only after Kafka acknowledged (acks=all). Invalid events
// go, with the reason, to a dead-letter topic.
//
// The request path is lean on purpose (fastjson, a hand-written event
// encoder, pooled buffers) and produces through a group-commit producer:
// one produce request per partition carries the events of every HTTP
// request that arrived while the previous one was in flight.
package collector

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
)

// Config configures the collector. The zero value of a field means its
// default, given with the field.
type Config struct {
	// Addr is the HTTP listen address. The default is 127.0.0.1:8080.
	Addr string
	// PathPrefixes are aliases of "/v1": with "/e", /e/batch, /e/track,
	// ..., /e/p.gif and /e/beacon.js answer as their /v1 counterparts
	// (ad blockers block paths naming tracking).
	PathPrefixes []string

	// Brokers are the Kafka bootstrap addresses. The default is
	// 127.0.0.1:19092.
	Brokers []string
	// Topic receives accepted events, DeadLetterTopic rejected ones with
	// the reason in a header (defaults: shoptrail.TopicEvents and
	// shoptrail.TopicDeadLetter). BotTopic, when set, receives the events
	// of crawlers instead of Topic (they are flagged either way).
	Topic           string
	DeadLetterTopic string
	BotTopic        string
	// HeartbeatTopic receives a small message when the collector has
	// produced nothing for a few seconds, so that readiness means "Kafka
	// acknowledged a produce recently". The default is
	// "shoptrail.collector.heartbeat".
	HeartbeatTopic string
	// ProduceTimeout bounds the wait for Kafka's acknowledgement; past it
	// the request is answered 503. The default is 5 seconds.
	ProduceTimeout time.Duration
	// Linger is the shortest time between two produce requests of a topic:
	// at low load it gathers events that would each need a request. The
	// default is 1ms; under load requests take longer and nothing waits.
	Linger time.Duration
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
	// The default is lz4.
	Compression string

	// Sites are the sites and their write keys. The default is one site
	// "dev" with write key "dev".
	Sites *Sites

	// MaxBodyBytes caps a request body, after gzip decoding. The default
	// is 512 KiB (Segment's batch limit).
	MaxBodyBytes int64
	// MaxBatchEvents caps the events of one batch. The default is 500.
	MaxBatchEvents int
	// MaxEventBytes caps one event as sent. The default is 32 KiB
	// (Segment's limit).
	MaxEventBytes int
	// MaxInflightBytes bounds the memory of requests being processed:
	// a request that would exceed it is answered 503 with Retry-After at
	// once. The default is 64 MiB.
	MaxInflightBytes int64
	// MaxConnections bounds open client connections (each costs memory
	// even when idle); more wait in the kernel's accept queue. The default
	// is 4096.
	MaxConnections int
	// MaxEventAge is how far back a corrected event time may lie; an
	// older one is taken for a wrong clock, clamped to the receive time and
	// flagged clock_clamped. The default is 7 days; raise it to load
	// history (`shoptrail simulate -days`).
	MaxEventAge time.Duration

	// ReadTimeout bounds reading a whole request (slow clients). The
	// default is 10 seconds.
	ReadTimeout time.Duration

	// IPRate and IPBurst limit requests per second from one IPv4 /24 or
	// IPv6 /64 (defaults 200 and 1000); KeyRate and KeyBurst limit events
	// per second per write key (defaults 50,000 and 100,000). A negative
	// rate disables the limit.
	IPRate, KeyRate   float64
	IPBurst, KeyBurst int

	// TrustedProxies are the networks whose X-Forwarded-For is believed:
	// the client address is the rightmost one not in these networks.
	TrustedProxies []netip.Prefix
	// IPMode is what is kept of the client address: "truncate" (the
	// default: IPv4 /24, IPv6 /48), "drop", or "raw".
	IPMode string
	// QueryParams are query parameters kept in page URLs and referrers
	// besides the built-in allowlist, for every site.
	QueryParams []string

	// IDCookie is the name of the collector's own first-party anonymous id
	// cookie (HttpOnly, set on ingest responses when the collector runs on
	// a subdomain of the shop); empty disables it. The flag's default is
	// "st_vid". IDCookieDomain is its Domain attribute (e.g.
	// "shop.example" to share it across subdomains); empty means the
	// collector's host only.
	IDCookie       string
	IDCookieDomain string

	// Pprof serves Go's profiler at /debug/pprof/ (off by default: it is
	// no public endpoint).
	Pprof bool
	// RejectSummaryEvery is how often the log gets one line summing up
	// the events rejected and requests refused since the last (nothing
	// when there were none). The default is 1 minute; 0 turns it off.
	RejectSummaryEvery time.Duration
}

// RegisterFlags registers the collector's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "http.addr", "127.0.0.1:8080", "collector HTTP listen address")
	fs.Func("http.path-prefix", `comma-separated aliases of /v1, e.g. "/e": /e/batch, /e/p.gif, /e/beacon.js answer as /v1/...`, func(s string) error {
		c.PathPrefixes = splitList(s)
		return nil
	})
	fs.Func("kafka.brokers", "comma-separated Kafka bootstrap addresses (default 127.0.0.1:19092)", func(s string) error {
		c.Brokers = splitList(s)
		return nil
	})
	fs.StringVar(&c.Topic, "kafka.topic", shoptrail.TopicEvents, "Kafka topic for accepted events")
	fs.StringVar(&c.DeadLetterTopic, "kafka.dead-letter-topic", shoptrail.TopicDeadLetter, "Kafka topic for rejected events")
	fs.StringVar(&c.BotTopic, "kafka.bot-topic", "", "Kafka topic for crawler events (default: the events topic; bot events are flagged either way)")
	fs.StringVar(&c.HeartbeatTopic, "kafka.heartbeat-topic", defaultHeartbeatTopic, "Kafka topic of the readiness heartbeat")
	fs.DurationVar(&c.ProduceTimeout, "kafka.produce-timeout", 5*time.Second, "longest wait for Kafka to acknowledge before answering 503")
	fs.DurationVar(&c.Linger, "kafka.linger", time.Millisecond, "shortest time between two produce requests of a topic (gathers events at low load)")
	fs.StringVar(&c.Compression, "kafka.compression", "lz4", "compression of produced batches: none, gzip, snappy, lz4, zstd")
	fs.Func("sites", `sites, their write keys and allowed browser origins: "site=key1|key2@https://shop.example|https://*.shop.example,site2=key3" ("@*": any origin, warned about at start; without "@": no browser, server SDKs only) (default "dev=dev@*")`, func(s string) error {
		sites, err := ParseSites(s)
		c.Sites = sites
		return err
	})
	fs.Func("sites.file", "JSON file of sites: id, writeKeys, allowedOrigins, timeZone, ownDomains, queryParams (replaces -sites)", func(s string) error {
		sites, err := LoadSitesFile(s)
		c.Sites = sites
		return err
	})
	fs.Int64Var(&c.MaxBodyBytes, "http.max-body-bytes", 512<<10, "largest accepted request body in bytes, after gzip decoding")
	fs.IntVar(&c.MaxBatchEvents, "http.max-batch-events", 500, "most events accepted in one batch")
	fs.IntVar(&c.MaxEventBytes, "http.max-event-bytes", 32<<10, "largest accepted event in bytes")
	fs.Int64Var(&c.MaxInflightBytes, "http.max-inflight-bytes", 64<<20, "memory budget of requests in progress; beyond it requests are shed with 503")
	fs.IntVar(&c.MaxConnections, "http.max-connections", 4096, "most open client connections; more wait to be accepted")
	fs.DurationVar(&c.MaxEventAge, "events.max-age", 7*24*time.Hour, "oldest event time accepted as sent; older ones are clamped to the receive time and flagged clock_clamped (raise it to load history)")
	fs.DurationVar(&c.ReadTimeout, "http.read-timeout", 10*time.Second, "longest time to read a request, headers and body")
	fs.Func("http.trusted-proxies", "comma-separated CIDRs whose X-Forwarded-For is trusted (default none)", func(s string) error {
		c.TrustedProxies = nil
		for _, p := range splitList(s) {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return err
			}
			c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
		}
		return nil
	})
	fs.Float64Var(&c.IPRate, "limits.ip-rate", 200, "requests per second from one IPv4 /24 or IPv6 /64 (negative: no limit)")
	fs.IntVar(&c.IPBurst, "limits.ip-burst", 1000, "burst of -limits.ip-rate")
	fs.Float64Var(&c.KeyRate, "limits.key-rate", 50000, "events per second per write key (negative: no limit)")
	fs.IntVar(&c.KeyBurst, "limits.key-burst", 100000, "burst of -limits.key-rate")
	fs.StringVar(&c.IPMode, "privacy.ip", "truncate", "client address kept on events: truncate (IPv4 /24, IPv6 /48), drop, raw")
	fs.Func("privacy.query-params", "comma-separated query parameters kept in URLs besides utm_*, click ids and search terms", func(s string) error {
		c.QueryParams = splitList(s)
		return nil
	})
	fs.StringVar(&c.IDCookie, "http.id-cookie", "st_vid", "name of the collector's HttpOnly anonymous id cookie (empty: none)")
	fs.BoolVar(&c.Pprof, "debug.pprof", false, "serve Go's profiler at /debug/pprof/ (never on a public address)")
	fs.DurationVar(&c.RejectSummaryEvery, "log.rejects-every", time.Minute, "log one line summing up rejected events and refused requests this often (0: never)")
	fs.StringVar(&c.IDCookieDomain, "http.id-cookie-domain", "", "Domain attribute of the id cookie, e.g. shop.example (default: the collector's host)")
}

const defaultHeartbeatTopic = "shoptrail.collector.heartbeat"

// DefaultSites is the development site: write key "dev", any browser
// origin, said explicitly (and warned about at start).
const DefaultSites = "dev=dev@*"

// setDefaults fills what RegisterFlags would have set, for configs built in
// code.
func (c *Config) setDefaults() {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.Addr, "127.0.0.1:8080")
	def(&c.Topic, shoptrail.TopicEvents)
	def(&c.DeadLetterTopic, shoptrail.TopicDeadLetter)
	def(&c.HeartbeatTopic, defaultHeartbeatTopic)
	def(&c.Compression, "lz4")
	def(&c.IPMode, "truncate")
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:19092"}
	}
	if c.Sites == nil {
		c.Sites, _ = ParseSites(DefaultSites)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 512 << 10
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = 500
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = 32 << 10
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = 64 << 20
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 4096
	}
	if c.MaxEventAge <= 0 {
		c.MaxEventAge = maxAge
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.Linger == 0 {
		c.Linger = time.Millisecond
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 5 * time.Second
	}
	if c.IPRate == 0 {
		c.IPRate, c.IPBurst = 200, 1000
	}
	if c.KeyRate == 0 {
		c.KeyRate, c.KeyBurst = 50000, 100000
	}
}

// Validate fills defaults and reports what is wrong with the config.
func (c *Config) Validate() error {
	c.setDefaults()
	if _, err := compressionCodec(c.Compression); err != nil {
		return err
	}
	for _, p := range c.PathPrefixes {
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || p == "/v1" || strings.ContainsAny(p, " {}") {
			return fmt.Errorf("http.path-prefix %q: want a path such as /e (no trailing slash)", p)
		}
	}
	switch {
	case c.MaxBodyBytes < 1024:
		return errors.New("http.max-body-bytes must be at least 1024")
	case c.MaxBatchEvents < 1:
		return errors.New("http.max-batch-events must be at least 1")
	case c.MaxEventBytes < 256:
		return errors.New("http.max-event-bytes must be at least 256")
	case c.MaxInflightBytes < 4*c.MaxBodyBytes:
		return errors.New("http.max-inflight-bytes must be at least 4 times http.max-body-bytes")
	case c.Topic == c.DeadLetterTopic:
		return errors.New("kafka.topic and kafka.dead-letter-topic must differ")
	case c.IPMode != "truncate" && c.IPMode != "drop" && c.IPMode != "raw":
		return fmt.Errorf("privacy.ip %q: want truncate, drop or raw", c.IPMode)
	case c.IPRate > 0 && c.IPBurst < 1, c.KeyRate > 0 && c.KeyBurst < 1:
		return errors.New("limits bursts must be at least 1")
	}
	return nil
}

func compressionCodec(name string) (kafka.Compression, error) {
	switch name {
	case "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("kafka.compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
