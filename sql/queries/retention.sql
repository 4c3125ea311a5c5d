-- Retention by monthly cohort: customers by the month of their first order, and how many of them ordered again 1, 2, 3 ... months later.
-- Cohorts are the months of the range; orders are counted up to the end of
-- the range. An order is an order id of Order Completed (taken once); a
-- customer is the userId, else the anonymous id. months_after = 0 is the
-- cohort itself. Bots are left out.
SELECT
    cohort,
    months_after,
    cohort_size,
    retained,
    round(retained / cohort_size, 4) AS retention
FROM
(
    SELECT
        cohort,
        (toYear(month) * 12 + toMonth(month)) - (toYear(cohort) * 12 + toMonth(cohort)) AS months_after,
        uniqExact(person) AS retained
    FROM
    (
        SELECT DISTINCT if(user_id != '', user_id, anonymous_id) AS person, toStartOfMonth(event_time) AS month
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != '' AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
    ) AS o
    ALL INNER JOIN
    (
        SELECT if(user_id != '', user_id, anonymous_id) AS person, toStartOfMonth(min(event_time)) AS cohort
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != '' AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
        GROUP BY person
    ) AS c USING (person)
    WHERE cohort >= toStartOfMonth($__fromTime)
    GROUP BY cohort, months_after
) AS r
ANY LEFT JOIN
(
    SELECT cohort, count() AS cohort_size
    FROM
    (
        SELECT if(user_id != '', user_id, anonymous_id) AS person, toStartOfMonth(min(event_time)) AS cohort
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != '' AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
        GROUP BY person
    )
    GROUP BY cohort
) AS s USING (cohort)
ORDER BY cohort, months_after
