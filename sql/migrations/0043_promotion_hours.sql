-- Banner impressions and clicks rolled up per hour, for banners over a
-- month without reading every Promotion Viewed event of it (about one event
-- in eleven of a simulated shop).
--
-- One row per site, hour, event (Promotion Viewed or Promotion Clicked),
-- promotion id and creative (no bots, no empty promotion id): events and
-- visitors are uniqExact states over the 64-bit sipHash64 of message ids
-- and anonymous ids, so a redelivered event, or any number of copies of
-- it, counts once (merged over the range's hours).
--
-- A merged month is a few thousand rows, each holding a set of ids: marks
-- every 128 rows (not 8,192) let a day's query read that day's sets, not
-- the month's.
--
-- The materialized view rolls up every insert into events; promotion
-- events already there are rolled up by the INSERT below (an event rolled
-- up by both counts once).
CREATE TABLE IF NOT EXISTS promotion_hours
(
    site          String,
    hour          DateTime,
    event         String,
    promotion_id  String,
    creative      String,
    events        AggregateFunction(uniqExact, UInt64),
    visitors      AggregateFunction(uniqExact, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (site, hour, event, promotion_id, creative)
SETTINGS index_granularity = 128;

CREATE MATERIALIZED VIEW IF NOT EXISTS promotion_hours_mv TO promotion_hours AS
SELECT
    site,
    toStartOfHour(event_time) AS hour,
    event,
    promotion_id,
    creative,
    uniqExactState(sipHash64(message_id)) AS events,
    uniqExactState(sipHash64(anonymous_id)) AS visitors
FROM events
WHERE event IN ('Promotion Viewed', 'Promotion Clicked') AND promotion_id != '' AND is_bot = 0
GROUP BY site, hour, event, promotion_id, creative;

INSERT INTO promotion_hours
SELECT
    site,
    toStartOfHour(event_time) AS hour,
    event,
    promotion_id,
    creative,
    uniqExactState(sipHash64(message_id)) AS events,
    uniqExactState(sipHash64(anonymous_id)) AS visitors
FROM events
WHERE event IN ('Promotion Viewed', 'Promotion Clicked') AND promotion_id != '' AND is_bot = 0
GROUP BY site, hour, event, promotion_id, creative;
