-- Exit pages: the pages sessions end on, with the share of all sessions that ended there, top 50 over the range.
-- bounces are the sessions that also started there and saw one page without
-- engagement. Bots are left out; sessions are read from sessions_narrow
-- (migration 0045: the rows of sessions_by_start with 64-bit ids) with
-- FINAL, so a row written twice counts once and an open session counts as
-- its latest row.
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
        SELECT
            exit_page,
            count() AS exits,
            countIf(pages = 0) AS bounces,
            uniqExact(visitor) AS visitors
        FROM sessions_narrow FINAL
        WHERE site = '${site}' AND is_bot = 0 AND day >= toDate($__fromTime) AND day <= toDate($__toTime) AND $__timeFilter(start_time)
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
          AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
              AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
        GROUP BY exit_page
    )
)
ARRAY JOIN pages AS page
ORDER BY exits DESC, exit_page
LIMIT 50
