-- Registration stage: registrations per period with growth, registered visitors active, and registration -> first purchase conversion and time to it.
-- A registration is a customer id (userId) with a Signed Up event; its
-- period is its first. first_purchases counts those registered in the
-- period whose first Order Completed (by the same userId) came at or after
-- signing up, by the end of the range; hours_to_first_purchase is the
-- median time to it. active_registered counts the customer ids of the
-- period's sessions (sessions.customer_id: visitors linked to a customer).
-- prev_registrations is the period before (the range is widened back by one
-- period for it). Bots are left out; duplicates count once.
SELECT
    period,
    registrations,
    prev_registrations,
    registrations_growth,
    active_registered,
    first_purchases,
    first_purchase_rate,
    hours_to_first_purchase
FROM
(
    SELECT
        period,
        registrations,
        prev_registrations,
        if(prev_registrations = 0, NULL, round((registrations - prev_registrations) / prev_registrations, 4)) AS registrations_growth,
        first_purchases,
        if(registrations = 0, NULL, round(first_purchases / registrations, 4)) AS first_purchase_rate,
        hours_to_first_purchase
    FROM
    (
        SELECT
            period,
            countIf(reg_time >= $__fromTime) AS registrations,
            countIf(reg_time >= $__fromTime AND first_order >= reg_time) AS first_purchases,
            if(first_purchases = 0, NULL, round(medianExactIf((toUInt32(first_order) - toUInt32(reg_time)) / 3600, reg_time >= $__fromTime AND first_order >= reg_time), 2)) AS hours_to_first_purchase,
            ${grain}(period - 1) AS prev_period
        FROM
        (
            SELECT user_id, min(event_time) AS reg_time, ${grain}(reg_time) AS period
            FROM events
            WHERE site = '${site}' AND is_bot = 0 AND event = 'Signed Up' AND user_id != ''
              AND toDate(event_time) >= ${grain}(${grain}($__fromTime) - 1) AND event_time >= toDateTime(${grain}(${grain}($__fromTime) - 1)) AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
            GROUP BY user_id
        ) AS reg
        ANY LEFT JOIN
        (
            SELECT user_id, min(event_time) AS first_order
            FROM events
            WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND user_id != ''
              AND toDate(event_time) >= ${grain}(${grain}($__fromTime) - 1) AND event_time >= toDateTime(${grain}(${grain}($__fromTime) - 1)) AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
            GROUP BY user_id
        ) AS ord USING (user_id)
        GROUP BY period
        HAVING registrations > 0
    ) AS cur
    ANY LEFT JOIN
    (
        SELECT ${grain}(reg_time) AS prev_period, count() AS prev_registrations
        FROM
        (
            SELECT user_id, min(event_time) AS reg_time
            FROM events
            WHERE site = '${site}' AND is_bot = 0 AND event = 'Signed Up' AND user_id != ''
              AND toDate(event_time) >= ${grain}(${grain}($__fromTime) - 1) AND event_time >= toDateTime(${grain}(${grain}($__fromTime) - 1)) AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
            GROUP BY user_id
        )
        GROUP BY prev_period
    ) AS prev USING (prev_period)
) AS cp
ANY LEFT JOIN
(
    SELECT ${grain}(start_time) AS period, uniqExact(customer_id) AS active_registered
    FROM sessions_by_start FINAL
    WHERE site = '${site}' AND is_bot = 0 AND customer_id != '' AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
    GROUP BY period
) AS act USING (period)
ORDER BY period
