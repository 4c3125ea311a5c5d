package devstack

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shoptrail/shoptrail"
)

// BrokerConfig configures the in-process Kafka-protocol broker.
type BrokerConfig struct {
	// Port is the listening port on 127.0.0.1; 0 picks a free one.
	Port int
	// DataDir keeps the log on disk, so a broker restarted on the same
	// directory still has every event it acknowledged. Empty keeps it in
	// memory only (tests).
	DataDir string
	// Partitions is the partition count of the topics created at start.
	// The default is 4. Never change it for an existing DataDir: events
	// are partitioned by visitor.
	Partitions int
	// Topics are created at start; the default is the events and
	// dead-letter topics.
	Topics []string
	// Opts are passed to kfake as they are (fault injection in tests).
	Opts []kfake.Opt
}

// Broker is a running in-process Kafka-protocol broker. Clients reach it
// only over the network, through the real Kafka protocol.
type Broker struct {
	// Addrs are the bootstrap addresses (host:port).
	Addrs   []string
	cluster *kfake.Cluster
}

// StartBroker starts the broker and creates the topics.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 4
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = []string{shoptrail.TopicEvents, shoptrail.TopicDeadLetter, shoptrail.TopicSignals}
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...),
	}
	if cfg.Port != 0 {
		opts = append(opts, kfake.Ports(cfg.Port))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	opts = append(opts, cfg.Opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start the Kafka broker: %w", err)
	}
	return &Broker{Addrs: c.ListenAddrs(), cluster: c}, nil
}

// Cluster exposes the kfake cluster for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker; with a DataDir its log stays on disk.
func (b *Broker) Close() { b.cluster.Close() }
