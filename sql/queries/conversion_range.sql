-- Conversion and its normal range: the share of sessions with an order per day, with the band of normal daily fluctuation (mean +- 2 standard deviations of the range's days).
-- A day outside the band is unusual for this range: below it, look at what
-- changed (prices, checkout, a source that stopped); the alerter's
-- conversion-drop rule watches the same signal hour by hour. Days with no
-- session are left out. Bots are left out; sessions are read with FINAL, so
-- a row written twice counts once (sessions_by_start, once for the days and
-- the band).
-- Filters (dashboard variables, multi-value; '__all' is the value of All
-- and matches every session): ${channel} the session's channel, ${device}
-- its device class, ${customer_type} and ${tier} the customer type and
-- value tier of the session's customer (customers, FINAL; a session without
-- a customer id matches only when both are All).
SELECT
    d.1 AS day,
    d.3 AS conversion,
    round(greatest(mean - 2 * sd, 0), 4) AS normal_low,
    round(mean + 2 * sd, 4) AS normal_high,
    d.2 AS sessions
FROM
(
    SELECT groupArray((day, sessions, conversion)) AS days, avg(c) AS mean, stddevPop(c) AS sd
    FROM
    (
        SELECT
            toDate(start_time) AS day,
            count() AS sessions,
            round(countIf(orders > 0) / sessions, 4) AS conversion,
            countIf(orders > 0) / count() AS c
        FROM sessions_by_start FINAL
        WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
          AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
              AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
        GROUP BY day
    )
)
ARRAY JOIN days AS d
ORDER BY day
