-- Closed sessions rolled up per day, for the session queries over a month
-- (sessions, landing_pages) without reading every session of it with
-- FINAL: on ClickHouse 18.16 everything after FINAL runs on one thread.
--
-- One row per site, day of the session's start, channel, source, medium,
-- campaign, device class, landing page, pages (0: a bounce, one page or
-- none and not engaged; 1: one page or none, engaged; 2: two pages or
-- more), ordered (an order in the session) and is_returning, of final
-- session rows only (is_final = 1, no bots; migration 0030). A final row is
-- the closed session as it stays, and a replay writes the same final row
-- again, so a session lies in one row, and every figure is a state that
-- counts a copy once:
--
--   sessions: uniqExact of sipHash64(session_id);
--   visitors: uniqExact of sipHash64(anonymous_id), merged over the
--   range's rows (a visitor of two days counts once);
--   order_facts: the distinct (sipHash64(session_id), orders, revenue) of
--   the sessions with an order, summed by the queries.
--
-- Provisional rows (still-open sessions) are not rolled up: the queries
-- read the range's last two days, and a range start within a day, from
-- sessions_by_start FINAL as before, open sessions included, and the days
-- before them from here. A session still open two days after the day it
-- started is counted once it closes.
--
-- The materialized view rolls up every insert into sessions; sessions
-- already there are rolled up by the INSERT below (a session rolled up by
-- both counts once).
CREATE TABLE IF NOT EXISTS session_days
(
    site          String,
    day           Date,
    channel       String,
    source        String,
    medium        String,
    campaign      String,
    device_class  String,
    landing_page  String,
    pages         UInt8,
    ordered       UInt8,
    is_returning  UInt8,
    sessions      AggregateFunction(uniqExact, UInt64),
    visitors      AggregateFunction(uniqExact, UInt64),
    order_facts   AggregateFunction(groupUniqArray, Tuple(UInt64, UInt32, Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, channel, source, medium, campaign, device_class, landing_page, pages, ordered, is_returning);

CREATE MATERIALIZED VIEW IF NOT EXISTS session_days_mv TO session_days AS
SELECT
    site,
    toDate(start_time) AS day,
    channel,
    source,
    medium,
    campaign,
    device_class,
    landing_page,
    multiIf(page_views >= 2, 2, is_engaged = 1, 1, 0) AS pages,
    orders > 0 AS ordered,
    is_returning,
    uniqExactState(sipHash64(session_id)) AS sessions,
    uniqExactState(sipHash64(anonymous_id)) AS visitors,
    groupUniqArrayStateIf((sipHash64(session_id), orders, revenue), orders > 0) AS order_facts
FROM sessions
WHERE is_final = 1 AND is_bot = 0
GROUP BY site, day, channel, source, medium, campaign, device_class, landing_page, pages, ordered, is_returning;

INSERT INTO session_days
SELECT
    site,
    toDate(start_time) AS day,
    channel,
    source,
    medium,
    campaign,
    device_class,
    landing_page,
    multiIf(page_views >= 2, 2, is_engaged = 1, 1, 0) AS pages,
    orders > 0 AS ordered,
    is_returning,
    uniqExactState(sipHash64(session_id)) AS sessions,
    uniqExactState(sipHash64(anonymous_id)) AS visitors,
    groupUniqArrayStateIf((sipHash64(session_id), orders, revenue), orders > 0) AS order_facts
FROM sessions
WHERE is_final = 1 AND is_bot = 0
GROUP BY site, day, channel, source, medium, campaign, device_class, landing_page, pages, ordered, is_returning;
