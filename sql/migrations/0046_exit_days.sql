-- Closed sessions' exits rolled up per day, for exit_pages over a month,
-- the same way session_days (migration 0044) serves sessions and
-- landing_pages: exit_pages reads the range's last two days, a range start
-- within a day, and every day when a customer filter is set, from
-- sessions_narrow FINAL (migration 0045; open sessions included) and the
-- days before them from here.
--
-- One row per site, day of the session's start, channel, device class,
-- exit page and bounce (one page or none, not engaged: pages = 0 in
-- session_days), of final session rows only (is_final = 1, no bots). A
-- final row is the closed session as it stays, and a replay writes the same
-- final row again, so a session lies in one row, and every figure is a
-- state that counts a copy once:
--
--   sessions: uniqExact of sipHash64(session_id) (sessions_narrow's sid);
--   visitors: uniqExact of sipHash64(anonymous_id), merged over the
--   range's rows (a visitor of two days or pages counts once per page).
--
-- A session still open two days after the day it started is counted once
-- it closes. The materialized view rolls up every insert into sessions;
-- sessions already there are rolled up by the INSERT below (a session
-- rolled up by both counts once).
CREATE TABLE IF NOT EXISTS exit_days
(
    site          String,
    day           Date,
    channel       String,
    device_class  String,
    exit_page     String,
    bounce        UInt8,
    sessions      AggregateFunction(uniqExact, UInt64),
    visitors      AggregateFunction(uniqExact, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, channel, device_class, exit_page, bounce);

CREATE MATERIALIZED VIEW IF NOT EXISTS exit_days_mv TO exit_days AS
SELECT
    site,
    toDate(start_time) AS day,
    channel,
    device_class,
    exit_page,
    page_views <= 1 AND is_engaged = 0 AS bounce,
    uniqExactState(sipHash64(session_id)) AS sessions,
    uniqExactState(sipHash64(anonymous_id)) AS visitors
FROM sessions
WHERE is_final = 1 AND is_bot = 0
GROUP BY site, day, channel, device_class, exit_page, bounce;

INSERT INTO exit_days
SELECT
    site,
    toDate(start_time) AS day,
    channel,
    device_class,
    exit_page,
    page_views <= 1 AND is_engaged = 0 AS bounce,
    uniqExactState(sipHash64(session_id)) AS sessions,
    uniqExactState(sipHash64(anonymous_id)) AS visitors
FROM sessions
WHERE is_final = 1 AND is_bot = 0
GROUP BY site, day, channel, device_class, exit_page, bounce;
