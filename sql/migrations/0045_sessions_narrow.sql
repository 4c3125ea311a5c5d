-- The rows of sessions_by_start (migration 0040) with 64-bit ids and a few
-- columns, for the session queries that read every session of a month
-- with FINAL (exit_pages, sources). FINAL compares the sort key of every
-- row and, on ClickHouse 18.16, runs everything after it on one thread;
-- here the key is (site, day, sid) with sid = sipHash64(session_id), not the
-- session id's string, and the visitor is already hashed (visitor =
-- sipHash64(anonymous_id), as the queries count visitors), so FINAL and
-- the counting after it cost about half as much (A/B in the README).
--
-- It holds the same rows as sessions_by_start, versioned the same way: a
-- materialized view copies every insert into sessions, a session's final
-- row replaces its provisional ones (migration 0030) and a row written
-- twice (a redelivered batch) collapses, so FINAL gives one row per
-- session, open sessions included, exactly as sessions_by_start FINAL does
-- (two session ids of one site and day whose sipHash64 collide would count
-- once). pages is the session's class as in session_days (migration 0044):
-- 0 a bounce (one page or none, not engaged), 1 one page or none, engaged,
-- 2 two pages or more. anonymous_id is not read by the queries: it shards
-- the table by visitor on a cluster, like sessions, so the view's rows and
-- the copy below of one session meet on one shard.
--
-- Sessions already there are copied by the INSERT below (a row copied by
-- both collapses).
CREATE TABLE IF NOT EXISTS sessions_narrow
(
    site          String,
    day           Date,
    sid           UInt64,
    start_time    DateTime,
    anonymous_id  String,
    visitor       UInt64,
    customer_id   String,
    channel       String,
    source        String,
    medium        String,
    campaign      String,
    device_class  String,
    landing_page  String,
    exit_page     String,
    is_bot        UInt8,
    is_returning  UInt8,
    pages         UInt8,
    orders        UInt32,
    revenue       Float64,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, sid);

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_narrow_mv TO sessions_narrow AS
SELECT site, toDate(start_time) AS day, sipHash64(session_id) AS sid, start_time, anonymous_id, sipHash64(anonymous_id) AS visitor, customer_id,
    channel, source, medium, campaign, device_class, landing_page, exit_page, is_bot, is_returning,
    multiIf(page_views >= 2, 2, is_engaged = 1, 1, 0) AS pages, orders, revenue,
    toUInt64(is_final) * 4294967296 + toUInt64(end_time) AS version
FROM sessions;

INSERT INTO sessions_narrow
SELECT site, toDate(start_time) AS day, sipHash64(session_id) AS sid, start_time, anonymous_id, sipHash64(anonymous_id) AS visitor, customer_id,
    channel, source, medium, campaign, device_class, landing_page, exit_page, is_bot, is_returning,
    multiIf(page_views >= 2, 2, is_engaged = 1, 1, 0) AS pages, orders, revenue,
    toUInt64(is_final) * 4294967296 + toUInt64(end_time) AS version
FROM sessions;
