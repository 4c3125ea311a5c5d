-- Raw events, one row per accepted event as the collector produced it.
-- ReplacingMergeTree keyed by (site, message_id): a redelivered or retried
-- event collapses into one row; read with FINAL or uniqExact(message_id).
-- Partitioned by the event's own month (never by ingestion time), so that
-- duplicates meet in one partition and retention is DROP PARTITION.
CREATE TABLE IF NOT EXISTS events
(
    site               String,
    message_id         String,
    type               String,
    event              String,
    name               String,
    anonymous_id       String,
    user_id            String,
    event_time         DateTime,
    event_ms           UInt16,
    original_time      DateTime,
    sent_at            DateTime,
    received_at        DateTime,
    page_url           String,
    page_path          String,
    page_referrer      String,
    page_title         String,
    utm_source         String,
    utm_medium         String,
    utm_campaign       String,
    utm_term           String,
    utm_content        String,
    click_id_kind      String,
    click_id           String,
    user_agent         String,
    ip                 String,
    device_class       String,
    browser            String,
    os                 String,
    is_bot             UInt8,
    bot_reason         String,
    library            String,
    locale             String,
    tab_id             String,
    seq                Int64,
    transport          String,
    flags              Array(String),
    properties         String,
    traits             String,
    schema_version     UInt8
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (site, message_id);
