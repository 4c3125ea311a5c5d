-- Landing pages: sessions, visitors, bounce rate and conversion of the pages sessions start on, top 50 over the range.
-- Bots are left out; sessions are read with FINAL, so a row written twice
-- counts once.
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
    SELECT
        landing_page,
        count() AS sessions,
        uniqExact(sipHash64(anonymous_id)) AS visitors,
        countIf(page_views <= 1 AND is_engaged = 0) AS bounces,
        countIf(orders > 0) AS order_sessions,
        round(sum(revenue), 2) AS revenue_sum
    FROM sessions_by_start FINAL
    WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
      AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
      AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
          AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
          AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
    GROUP BY landing_page
)
ORDER BY sessions DESC, landing_page
LIMIT 50
