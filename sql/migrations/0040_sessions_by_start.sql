-- Sessions sorted by their start, for time ranges: sessions itself is
-- ordered by (site, session_id), so a query for a day reads the whole month.
-- sessions_by_start holds the same rows (a materialized view copies every
-- insert into sessions) sorted by (site, toDate(start_time), session_id);
-- the analytical queries read it. It is a ReplacingMergeTree versioned by
-- (is_final, end_time): a session's final row replaces its provisional ones
-- (migration 0030) and a later provisional row an earlier one, whatever
-- order a replay writes them in. Read with FINAL. Existing sessions are
-- copied over (a row copied twice collapses).
--
-- On ClickHouse 18.16 the sort key serves a range only when the query also
-- filters toDate(start_time): 18.16 does not carry start_time >= x through
-- toDate. The named queries filter both.
CREATE TABLE IF NOT EXISTS sessions_by_start
(
    site             String,
    session_id       String,
    anonymous_id     String,
    customer_id      String,
    start_time       DateTime,
    end_time         DateTime,
    duration_ms      UInt32,
    events           UInt32,
    page_views       UInt32,
    landing_page     String,
    exit_page        String,
    referrer         String,
    source           String,
    medium           String,
    campaign         String,
    term             String,
    content          String,
    click_id_kind    String,
    channel          String,
    rules_version    UInt16,
    device_class     String,
    browser          String,
    os               String,
    is_bot           UInt8,
    is_returning     UInt8,
    is_engaged       UInt8,
    funnel_step      Enum8('none' = 0, 'view' = 1, 'product' = 2, 'cart' = 3, 'checkout' = 4, 'order' = 5),
    cart_value       Float64,
    orders           UInt32,
    revenue          Float64,
    is_final         UInt8,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(start_time)
ORDER BY (site, toDate(start_time), session_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_by_start_mv TO sessions_by_start AS
SELECT site, session_id, anonymous_id, customer_id, start_time, end_time, duration_ms, events, page_views, landing_page, exit_page, referrer, source, medium, campaign, term, content, click_id_kind, channel, rules_version, device_class, browser, os, is_bot, is_returning, is_engaged, funnel_step, cart_value, orders, revenue, is_final,
    toUInt64(is_final) * 4294967296 + toUInt64(end_time) AS version
FROM sessions;

INSERT INTO sessions_by_start
SELECT site, session_id, anonymous_id, customer_id, start_time, end_time, duration_ms, events, page_views, landing_page, exit_page, referrer, source, medium, campaign, term, content, click_id_kind, channel, rules_version, device_class, browser, os, is_bot, is_returning, is_engaged, funnel_step, cart_value, orders, revenue, is_final,
    toUInt64(is_final) * 4294967296 + toUInt64(end_time) AS version
FROM sessions;
