-- Abandoned carts that were recovered (cart.recovered signals, as the
-- alerter saw them), for the recovery rate with and without alerts
-- (sql/queries/alert_recovery_rate.sql). A replayed signal inserts the same
-- row again: read with uniqExact(abandonment_id) or GROUP BY.
CREATE TABLE IF NOT EXISTS alert_recoveries (
    recorded_at DateTime,
    signal_id String,
    site String,
    subject String,
    abandonment_id String,
    abandoned_at DateTime,
    recovered_at DateTime,
    order_id String,
    value Float64,
    currency String
) ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(abandoned_at)
ORDER BY (site, abandonment_id);
