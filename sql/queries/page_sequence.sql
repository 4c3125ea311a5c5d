-- Page sequence: the page each visitor viewed next after ${page}, in event time, or (exit) when none followed within 30 minutes (exact, over raw events: for a few days; page_flow answers a month fast).
-- Counts page views of ${page} (distinct events) by the visitor's next page
-- view, over the range. Bots are left out; a redelivered page event counts
-- once. (Page events have no event name: event = '' lets the sort key skip
-- the track events.)
SELECT
    next_page,
    count() AS views,
    uniqExact(anonymous_id) AS visitors
FROM
(
    SELECT
        anonymous_id,
        if(i < length(pv) AND tupleElement(pv[i + 1], 1) - tupleElement(pv[i], 1) <= 1800000,
           tupleElement(pv[i + 1], 2), '(exit)') AS next_page
    FROM
    (
        SELECT anonymous_id, arraySort(groupUniqArray((toUInt64(event_time) * 1000 + event_ms, page_path, message_id))) AS pv
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = '' AND type = 'page' AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
        GROUP BY anonymous_id
    )
    ARRAY JOIN arrayEnumerate(pv) AS i
    WHERE tupleElement(pv[i], 2) = '${page}'
)
GROUP BY next_page
ORDER BY views DESC, next_page
LIMIT 50
