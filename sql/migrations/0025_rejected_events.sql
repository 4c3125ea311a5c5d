-- Events the collector rejected, one row per message of the dead-letter
-- topic (shoptrail.events.dlq), written by the processor's rejects
-- consumer: when, for which site, why (the collector's sentence and the
-- field it names) and the event as sent, scrubbed as the collector scrubs
-- (IP anonymized, URLs cleaned). Keyed by the message's place in the topic,
-- so a consumer that reads a message twice writes the same row twice and
-- ReplacingMergeTree keeps one: read with FINAL. `shoptrail dlq tail` shows
-- them, `shoptrail dlq replay` sends them again after a fix.
CREATE TABLE IF NOT EXISTS rejected_events
(
    received_at     DateTime,
    site            String,
    reason          String,
    field           String,
    type            String,
    event_name      String,
    message_id      String,
    anonymous_id    String,
    event           String,
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (kafka_partition, kafka_offset);
