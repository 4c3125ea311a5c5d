-- Conversion and its normal range: the share of sessions with an order per day, with the band of normal daily fluctuation (mean +- 2 standard deviations of the range's days).
-- A day outside the band is unusual for this range: below it, look at what
-- changed (prices, checkout, a source that stopped); the alerter's
-- conversion-drop rule watches the same signal hour by hour. Days with no
-- session are left out. Bots are left out; sessions are read with FINAL, so
-- a row written twice counts once.
SELECT
    day,
    conversion,
    round(greatest(mean - 2 * sd, 0), 4) AS normal_low,
    round(mean + 2 * sd, 4) AS normal_high,
    sessions
FROM
(
    SELECT
        toDate(start_time) AS day,
        count() AS sessions,
        round(countIf(orders > 0) / sessions, 4) AS conversion
    FROM sessions FINAL
    WHERE site = '${site}' AND is_bot = 0 AND $__timeFilter(start_time)
    GROUP BY day
) AS d
CROSS JOIN
(
    SELECT avg(c) AS mean, stddevPop(c) AS sd
    FROM
    (
        SELECT countIf(orders > 0) / count() AS c
        FROM sessions FINAL
        WHERE site = '${site}' AND is_bot = 0 AND $__timeFilter(start_time)
        GROUP BY toDate(start_time)
    )
) AS s
ORDER BY day
