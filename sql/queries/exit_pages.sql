-- Exit pages: the pages sessions end on, with the share of all sessions that ended there, top 50 over the range.
-- bounces are the sessions that also started there and saw one page without
-- engagement. Bots are left out. Closed sessions of whole days come from
-- exit_days (migration 0046), the range's last two days, a start within a
-- day, and every day when a customer filter is set, from sessions_narrow
-- FINAL (migration 0045: the rows of sessions_by_start with 64-bit ids;
-- open sessions included), as sessions and landing_pages do with
-- session_days; sessions and visitors are counted as distinct ids, so a
-- row written twice counts once.
-- Filters (dashboard variables, multi-value; '__all' is the value of All
-- and matches every session): ${channel} the session's channel, ${device}
-- its device class, ${customer_type} and ${tier} the customer type and
-- value tier of the session's customer (customers, FINAL; a session without
-- a customer id matches only when both are All).
SELECT
    page.1 AS exit_page,
    page.2 AS exits,
    round(exits / total, 4) AS exit_share,
    page.3 AS bounces,
    page.4 AS visitors
FROM
(
    SELECT groupArray((exit_page, exits, bounces, visitors)) AS pages, sum(exits) AS total
    FROM
    (
        -- closed sessions of whole days from exit_days, the rest from
        -- sessions_narrow (see the note at the top)
        SELECT
            exit_page,
            uniqExactMerge(s) AS exits,
            uniqExactMergeIf(s, bounce = 1) AS bounces,
            uniqExactMerge(v) AS visitors
        FROM
        (
            SELECT exit_page, bounce, sessions AS s, visitors AS v
            FROM exit_days
            WHERE site = '${site}' AND day >= toDate($__fromTime) AND day <= toDate($__toTime)
              AND NOT (day >= if(has([${customer_type}], '__all') AND has([${tier}], '__all'), toDate($__toTime) - 1, toDate(0))
                  OR day = if(toDate($__fromTime - 1) = toDate($__fromTime), toDate($__fromTime), toDate(0)))
              AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
            UNION ALL
            SELECT exit_page, toUInt8(pages = 0) AS bounce, uniqExactState(sid) AS s, uniqExactState(visitor) AS v
            FROM sessions_narrow FINAL
            WHERE site = '${site}' AND is_bot = 0 AND day >= toDate($__fromTime) AND day <= toDate($__toTime) AND $__timeFilter(start_time)
              AND (day >= if(has([${customer_type}], '__all') AND has([${tier}], '__all'), toDate($__toTime) - 1, toDate(0))
                  OR day = if(toDate($__fromTime - 1) = toDate($__fromTime), toDate($__fromTime), toDate(0)))
              AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
              AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
                  AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
                  AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
            GROUP BY exit_page, bounce
        )
        GROUP BY exit_page
    )
)
ARRAY JOIN pages AS page
ORDER BY exits DESC, exit_page
LIMIT 50
