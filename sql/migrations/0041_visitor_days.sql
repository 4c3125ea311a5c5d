-- For stage_pyramid over a month without reading every event of it: who
-- was active on which day, and the events that raise a person's stage.
--
-- visitor_days: one row per site, day, anonymous id and user id seen
-- together on that day (no bots), potential = 1 when the visitor carted,
-- favorited or inquired that day. ReplacingMergeTree(potential): rows of
-- one key collapse into one, keeping potential = 1 when any had it, so a
-- redelivered event, or any number of them, changes nothing.
--
-- person_facts: the Order Completed and Signed Up events (no bots), one row
-- per message id (ReplacingMergeTree: a redelivered event collapses; the
-- query counts distinct order ids anyway).
--
-- Materialized views fill both from every insert into events; events
-- already there are copied by the INSERTs below (copies collapse).
CREATE TABLE IF NOT EXISTS visitor_days
(
    site          String,
    day           Date,
    anonymous_id  String,
    user_id       String,
    potential     UInt8
)
ENGINE = ReplacingMergeTree(potential)
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, anonymous_id, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_days_mv TO visitor_days AS
SELECT site, toDate(event_time) AS day, anonymous_id, user_id,
    max(event IN ('Product Added', 'Product Added to Wishlist', 'Inquiry Started')) AS potential
FROM events
WHERE is_bot = 0
GROUP BY site, day, anonymous_id, user_id;

INSERT INTO visitor_days
SELECT site, toDate(event_time) AS day, anonymous_id, user_id,
    max(event IN ('Product Added', 'Product Added to Wishlist', 'Inquiry Started')) AS potential
FROM events
WHERE is_bot = 0
GROUP BY site, day, anonymous_id, user_id;

CREATE TABLE IF NOT EXISTS person_facts
(
    site          String,
    message_id    String,
    event         String,
    anonymous_id  String,
    user_id       String,
    event_time    DateTime,
    order_id      String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (site, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS person_facts_mv TO person_facts AS
SELECT site, message_id, event, anonymous_id, user_id, event_time, order_id
FROM events
WHERE is_bot = 0 AND event IN ('Order Completed', 'Signed Up');

INSERT INTO person_facts
SELECT site, message_id, event, anonymous_id, user_id, event_time, order_id
FROM events
WHERE is_bot = 0 AND event IN ('Order Completed', 'Signed Up');
