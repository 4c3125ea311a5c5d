-- Landing pages: sessions, visitors, bounce rate and conversion of the pages sessions start on, top 50 over the range.
-- Bots are left out. Closed sessions of whole days come from session_days
-- (migration 0044), the range's last two days, a start within a day, and
-- every day when a customer filter is set, from sessions_by_start FINAL
-- (open sessions included); sessions and visitors are counted as distinct
-- ids and revenue once per session, so a row written twice counts once.
-- Filters (dashboard variables, multi-value; '__all' is the value of All
-- and matches every session): ${channel} the session's channel, ${device}
-- its device class, ${customer_type} and ${tier} the customer type and
-- value tier of the session's customer (customers, FINAL; a session without
-- a customer id matches only when both are All).
SELECT
    landing_page,
    sessions,
    visitors,
    round(bounces / sessions, 4) AS bounce_rate,
    order_sessions,
    round(order_sessions / sessions, 4) AS conversion,
    revenue_sum AS revenue
FROM
(
    -- closed sessions of whole days from session_days, the rest from
    -- sessions_by_start (see the note at the top)
    SELECT
        landing_page,
        uniqExactMerge(s) AS sessions,
        uniqExactMerge(v) AS visitors,
        uniqExactMergeIf(s, pages = 0) AS bounces,
        uniqExactMergeIf(s, ordered = 1) AS order_sessions,
        round(arraySum(arrayMap(f -> f.3, groupUniqArrayMerge(o))), 2) AS revenue_sum
    FROM
    (
        SELECT landing_page, pages, ordered, sessions AS s, visitors AS v, order_facts AS o
        FROM session_days
        WHERE site = '${site}' AND day >= toDate($__fromTime) AND day <= toDate($__toTime)
          AND NOT (day >= if(has([${customer_type}], '__all') AND has([${tier}], '__all'), toDate($__toTime) - 1, toDate(0))
              OR day = if(toDate($__fromTime - 1) = toDate($__fromTime), toDate($__fromTime), toDate(0)))
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
        UNION ALL
        SELECT
            landing_page,
            multiIf(page_views >= 2, 2, is_engaged = 1, 1, 0) AS pages,
            orders > 0 AS ordered,
            uniqExactState(sipHash64(session_id)) AS s,
            uniqExactState(sipHash64(anonymous_id)) AS v,
            groupUniqArrayStateIf((sipHash64(session_id), orders, revenue), orders > 0) AS o
        FROM sessions_by_start FINAL
        WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
          AND (toDate(start_time) >= if(has([${customer_type}], '__all') AND has([${tier}], '__all'), toDate($__toTime) - 1, toDate(0))
              OR toDate(start_time) = if(toDate($__fromTime - 1) = toDate($__fromTime), toDate($__fromTime), toDate(0)))
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
          AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
              AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
        GROUP BY landing_page, pages, ordered
    )
    GROUP BY landing_page
)
ORDER BY sessions DESC, landing_page
LIMIT 50
