package alert

import (
	"errors"
	"flag"
	"os"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Config configures the alerter. Defaults are set by RegisterFlags and by
// New for zero values.
type Config struct {
	// Brokers are the Kafka bootstrap addresses; the default is
	// 127.0.0.1:19092.
	Brokers []string
	// Topic is the signals topic; the default is shoptrail.signals.
	Topic string
	// GroupID is the alerters' consumer group (not the processor's: a slow
	// webhook never stalls the processor). The default is shoptrail-alerter.
	GroupID string
	// RateLimitTopic is the one-partition topic of rate-limit claims shared
	// by all alerters (see ratelimit.go); the default is <Topic>.ratelimit.
	RateLimitTopic string
	// SessionTimeout is how long the group waits for a silent alerter
	// (killed, hung) before its partitions move; the default is 10s.
	SessionTimeout time.Duration
	// RulesFile is the YAML rules file (required).
	RulesFile string
	// ReloadInterval is how often the rules file is checked for changes
	// (SIGHUP reloads at once); the default is 2s.
	ReloadInterval time.Duration
	// DropInterval is how often conversion_drop rules are checked (over the
	// hour before); the default is 5m.
	DropInterval time.Duration
	// AllowLoopback lets alerts go to 127.0.0.1/::1 (a receiver on this
	// host, tests). Every other internal address stays refused.
	AllowLoopback bool
	// ID names this alerter in alert_deliveries (rate limits tell its
	// sends from the others'); the default is the host name.
	ID string
	// Timeout bounds one delivery attempt; the default is 10s.
	Timeout time.Duration
	// MaxAge is how long an alert is retried before it is given up
	// (gave_up); the default is 24h.
	MaxAge time.Duration
	// BackoffBase and BackoffMax shape the retry waits: BackoffBase,
	// doubling per attempt up to BackoffMax, with jitter. Defaults 1s, 5m.
	BackoffBase, BackoffMax time.Duration
	// Concurrency is the number of requests in flight per destination; the
	// default is 8.
	Concurrency int
	// MaxPending bounds the alerts decided but not yet done (queued,
	// retrying, deferred); reading signals pauses at it. The default is
	// 100000.
	MaxPending int
	// RecordInterval is how often outcomes are written to ClickHouse
	// (sooner when 5,000 rows wait) and offsets committed; the default is
	// 1s. An insert costs ClickHouse 18.16 tens of ms of CPU almost
	// whatever its size (measured under load: 50,000 rows in 100 inserts
	// took 2.2-5.5 s of its CPU, in 10 inserts 0.42-0.48 s), so a short
	// interval costs ClickHouse CPU even at a trickle; a long one delays
	// commits, and an alerter killed in between sends that much again
	// (with the same webhook-ids).
	RecordInterval time.Duration
	// BatchSize is the most signals decided together (one ClickHouse
	// look-up of earlier outcomes per batch); the default is 1000.
	BatchSize int
}

// RegisterFlags registers the alerter's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("kafka.brokers", "comma-separated Kafka bootstrap addresses (default 127.0.0.1:19092)", func(s string) error {
		c.Brokers = nil
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		return nil
	})
	fs.StringVar(&c.Topic, "kafka.topic", shoptrail.TopicSignals, "Kafka topic of signals")
	fs.StringVar(&c.GroupID, "kafka.group", "shoptrail-alerter", "Kafka consumer group of the alerters")
	fs.StringVar(&c.RateLimitTopic, "kafka.ratelimit-topic", "", "one-partition Kafka topic of the destinations' rate-limit claims, shared by all alerters (default <kafka.topic>.ratelimit)")
	fs.DurationVar(&c.SessionTimeout, "kafka.session-timeout", 10*time.Second, "how long the group waits for a silent alerter before moving its partitions")
	fs.StringVar(&c.RulesFile, "alerts.file", "", "the YAML alert rules file (required); reloaded on SIGHUP and when it changes")
	fs.DurationVar(&c.ReloadInterval, "alerts.reload-interval", 2*time.Second, "how often the rules file is checked for changes")
	fs.DurationVar(&c.DropInterval, "alerts.drop-interval", 5*time.Minute, "how often conversion_drop and hot_lead rules are checked")
	fs.BoolVar(&c.AllowLoopback, "alerts.allow-loopback", false, "allow destinations on 127.0.0.1/::1 (a receiver on this host); other internal addresses stay refused")
	host, _ := os.Hostname()
	fs.StringVar(&c.ID, "alerter.id", host, "this alerter's name in alert_deliveries (default: the host name)")
	fs.DurationVar(&c.Timeout, "deliver.timeout", 10*time.Second, "time limit of one delivery attempt")
	fs.DurationVar(&c.MaxAge, "deliver.max-age", 24*time.Hour, "how long an alert is retried before it is given up")
	fs.DurationVar(&c.BackoffBase, "deliver.backoff-base", time.Second, "first retry wait (doubles per attempt, with jitter)")
	fs.DurationVar(&c.BackoffMax, "deliver.backoff-max", 5*time.Minute, "longest retry wait")
	fs.IntVar(&c.Concurrency, "deliver.concurrency", 8, "requests in flight per destination")
	fs.IntVar(&c.MaxPending, "deliver.max-pending", 100000, "alerts decided but not done before reading signals pauses")
	fs.DurationVar(&c.RecordInterval, "record.interval", time.Second, "how often outcomes are written to ClickHouse and offsets committed")
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:19092"}
	}
	if c.Topic == "" {
		c.Topic = shoptrail.TopicSignals
	}
	if c.RateLimitTopic == "" {
		c.RateLimitTopic = c.Topic + ".ratelimit"
	}
	if c.GroupID == "" {
		c.GroupID = "shoptrail-alerter"
	}
	if c.ID == "" {
		c.ID, _ = os.Hostname()
	}
	def(&c.ReloadInterval, 2*time.Second)
	def(&c.DropInterval, 5*time.Minute)
	def(&c.SessionTimeout, 10*time.Second)
	def(&c.Timeout, 10*time.Second)
	def(&c.MaxAge, 24*time.Hour)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.RecordInterval, time.Second)
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 100000
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
}

// Validate reports what is wrong with the config.
func (c *Config) Validate() error {
	if c.RulesFile == "" {
		return errors.New("alerts.file is required: the YAML alert rules")
	}
	if c.BackoffMax < c.BackoffBase {
		return errors.New("deliver.backoff-max is below deliver.backoff-base")
	}
	return nil
}
