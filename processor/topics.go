package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// ensureTopic creates topic with the events topic's partition count (and
// the config entries given) unless it exists, and returns that count.
// With sameCount an existing topic must have that count (its partition p
// belongs to events partition p).
func ensureTopic(ctx context.Context, client *kafka.Client, eventsTopic, topic string, sameCount bool, entries []kafka.ConfigEntry) (int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{eventsTopic, topic}})
	if err != nil {
		return 0, fmt.Errorf("cannot read metadata of %q: %w", eventsTopic, err)
	}
	counts := map[string]int{}
	for _, t := range md.Topics {
		if t.Error == nil {
			counts[t.Name] = len(t.Partitions)
		}
	}
	n := counts[eventsTopic]
	if n == 0 {
		return 0, fmt.Errorf("events topic %q does not exist", eventsTopic)
	}
	if have, ok := counts[topic]; ok {
		if sameCount && have != n {
			return 0, fmt.Errorf("%w: topic %q has %d, events topic %q %d", errPartitionMismatch, topic, have, eventsTopic, n)
		}
		return n, nil
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: n, ReplicationFactor: -1, ConfigEntries: entries}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return 0, fmt.Errorf("cannot create topic %q: %w", topic, err)
	}
	return n, nil
}
