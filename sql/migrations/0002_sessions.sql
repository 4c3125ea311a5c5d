-- What the processor derives from the events: sessions, the session (or
-- late/duplicate status) of every event, identity links, beacon loss and
-- rows ClickHouse refused. Every table is safe under redelivery: rows have
-- deterministic keys and ReplacingMergeTree collapses a row written twice
-- after a crash or a rebalance. Read with FINAL (or argMax/uniqExact).

-- One row per closed session. session_id is derived from the site, the
-- visitor and the message id of the session's first event, so a replay
-- writes the same row again and it collapses.
CREATE TABLE IF NOT EXISTS sessions
(
    site            String,
    session_id      String,
    anonymous_id    String,
    customer_id     String,
    start_time      DateTime,
    end_time        DateTime,
    duration_ms     UInt32,
    events          UInt32,
    page_views      UInt32,
    landing_page    String,
    exit_page       String,
    referrer        String,
    source          String,
    medium          String,
    campaign        String,
    term            String,
    content         String,
    click_id_kind   String,
    channel         String,
    rules_version   UInt16,
    device_class    String,
    browser         String,
    os              String,
    is_bot          UInt8,
    is_returning    UInt8,
    is_engaged      UInt8,
    funnel_step     Enum8('none' = 0, 'view' = 1, 'product' = 2, 'cart' = 3, 'checkout' = 4, 'order' = 5),
    cart_value      Float64,
    orders          UInt32,
    revenue         Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start_time)
ORDER BY (site, session_id);

-- The session of each event, once its place is final, or why it has none:
-- 'late' (arrived after the allowed lateness: kept in events, counted here,
-- in no session), 'duplicate' (a copy of a message id already counted),
-- 'invalid' (no site, visitor or time). When copies of one message id get
-- different statuses, the highest rank wins: assigned, duplicate, late,
-- invalid. Join to events on (site, message_id).
CREATE TABLE IF NOT EXISTS event_sessions
(
    site            String,
    message_id      String,
    session_id      String,
    status          Enum8('assigned' = 0, 'duplicate' = 1, 'late' = 2, 'invalid' = 3),
    rank            UInt8
)
ENGINE = ReplacingMergeTree(rank)
ORDER BY (site, message_id);

-- Every link of an anonymous visitor to a customer id (identify, login, any
-- event carrying both ids), with the event time it was first seen: join
-- sessions on anonymous_id to attribute earlier anonymous sessions to the
-- customer (take min(first_seen) per pair).
CREATE TABLE IF NOT EXISTS identity_links
(
    site            String,
    anonymous_id    String,
    customer_id     String,
    first_seen      DateTime
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(first_seen)
ORDER BY (site, anonymous_id, customer_id, first_seen);

-- Beacon loss: events received with a per-tab sequence number and events
-- missing from the sequences, per site, browser and page, summed over a
-- fixed range of Kafka offsets of one partition (a bucket). A bucket's row
-- is rewritten with growing sums as the bucket fills; through_offset
-- versions it, so a replay rewrites the same sums. Sum received and lost
-- over the buckets, after FINAL.
CREATE TABLE IF NOT EXISTS delivery_loss
(
    site            String,
    browser         String,
    page_path       String,
    kafka_partition UInt32,
    bucket_offset   UInt64,
    day             Date,
    received        Int64,
    lost            Int64,
    through_offset  UInt64
)
ENGINE = ReplacingMergeTree(through_offset)
PARTITION BY toYYYYMM(day)
ORDER BY (site, browser, page_path, kafka_partition, bucket_offset);

-- Rows ClickHouse refused (parse or type errors) and Kafka messages the
-- processor could not decode, with the error and the payload, so nothing is
-- dropped in silence. row_key is the row's own key (message id, session id)
-- or, for an undecodable message, its partition and offset.
CREATE TABLE IF NOT EXISTS dead_letters
(
    table_name      String,
    row_key         String,
    topic           String,
    kafka_partition UInt32,
    kafka_offset    Int64,
    time            DateTime,
    error_code      Int32,
    error           String,
    payload         String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (table_name, row_key);
