// Package collector is the HTTP ingest edge: it accepts events in the Segment
// HTTP Tracking API format, authenticates the site by its write key, turns
// each message into a shoptrail.Event and produces it to Kafka, answering
// 2xx only after Kafka acknowledged.
package collector

import (
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Config configures the collector.
type Config struct {
	// Addr is the HTTP listen address. The default is 127.0.0.1:8080.
	Addr string
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Topic receives accepted events; DeadLetterTopic receives rejected
	// ones with the reason.
	Topic           string
	DeadLetterTopic string
	// Sites maps write keys to sites; see ParseSites for the flag format.
	Sites Sites
	// MaxBodyBytes caps a request body (after gzip decoding). The default
	// is 512 KiB, Segment's batch limit.
	MaxBodyBytes int64
	// MaxBatchEvents caps the events of one batch. The default is 500.
	MaxBatchEvents int
	// ProduceTimeout bounds the wait for Kafka's acknowledgement; past it
	// the request is answered 503. The default is 10 seconds.
	ProduceTimeout time.Duration
}

// RegisterFlags registers the collector's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "http.addr", "127.0.0.1:8080", "collector HTTP listen address")
	fs.Func("kafka.brokers", "comma-separated Kafka bootstrap addresses (default 127.0.0.1:19092)", func(s string) error {
		c.Brokers = splitList(s)
		return nil
	})
	fs.StringVar(&c.Topic, "kafka.topic", shoptrail.TopicEvents, "Kafka topic for accepted events")
	fs.StringVar(&c.DeadLetterTopic, "kafka.dead-letter-topic", shoptrail.TopicDeadLetter, "Kafka topic for rejected events")
	fs.Func("sites", `sites and their write keys: "site=key1|key2,site2=key3" (default "dev=dev")`, func(s string) error {
		sites, err := ParseSites(s)
		c.Sites = sites
		return err
	})
	fs.Int64Var(&c.MaxBodyBytes, "http.max-body-bytes", 512<<10, "largest accepted request body in bytes, after gzip decoding")
	fs.IntVar(&c.MaxBatchEvents, "http.max-batch-events", 500, "most events accepted in one batch")
	fs.DurationVar(&c.ProduceTimeout, "kafka.produce-timeout", 10*time.Second, "longest wait for Kafka to acknowledge before answering 503")
}

// setDefaults fills what RegisterFlags would have set, for configs built in
// code.
func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:19092"}
	}
	if c.Topic == "" {
		c.Topic = shoptrail.TopicEvents
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = shoptrail.TopicDeadLetter
	}
	if c.Sites == nil {
		c.Sites, _ = ParseSites("dev=dev")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 512 << 10
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = 500
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 10 * time.Second
	}
}

// Validate reports what is wrong with the config.
func (c *Config) Validate() error {
	c.setDefaults()
	switch {
	case c.MaxBodyBytes < 1024:
		return errors.New("http.max-body-bytes must be at least 1024")
	case c.MaxBatchEvents < 1:
		return errors.New("http.max-batch-events must be at least 1")
	case c.Topic == c.DeadLetterTopic:
		return errors.New("kafka.topic and kafka.dead-letter-topic must differ")
	}
	return nil
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
