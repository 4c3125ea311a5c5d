-- The alerter's outbox record: one row per decision that is not an alert
-- (held out, suppressed by cooldown, queued for a digest) and one per
-- delivery attempt. Signal offsets are committed only after the rows of
-- their outcome are here. final = 1 marks an alert's last row (sent,
-- rejected, gave_up, held_out, suppressed_cooldown, digest_pending; a
-- digest's own delivery has signal_type 'digest'); retrying rows have
-- final = 0. cooldown_until (event time)
-- carries the per-subject cooldown across restarts and alerters; 0 when the
-- row sets none.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    recorded_at DateTime,
    alert_id String,
    signal_id String,
    signal_type String,
    site String,
    rule String,
    subject String,
    abandonment_id String,
    destination String,
    attempt UInt16,
    status String,
    final UInt8,
    http_status UInt16,
    answer String,
    latency_ms UInt32,
    held_out UInt8,
    follow_up String,
    signal_at DateTime,
    cooldown_until DateTime,
    payload String,
    alerter String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(signal_at)
ORDER BY (site, rule, subject, alert_id, recorded_at);
