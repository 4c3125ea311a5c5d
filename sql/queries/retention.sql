-- Retention by monthly cohort: customers by the month of their first order, and how many of them ordered again 1, 2, 3 ... months later.
-- Cohorts are the months of the range; orders are counted up to the end of
-- the range. An order is an order id of Order Completed (taken once); a
-- customer is the userId, else the anonymous id. months_after = 0 is the
-- cohort itself. Bots are left out.
SELECT
    cohort,
    tupleElement(r, 1) AS months_after,
    cohort_size,
    tupleElement(r, 2) AS retained,
    round(retained / cohort_size, 4) AS retention
FROM
(
    SELECT
        cohort,
        groupArray((months_after, persons)) AS rs,
        arraySum(arrayMap(x -> if(tupleElement(x, 1) = 0, tupleElement(x, 2), 0), rs)) AS cohort_size
    FROM
    (
        SELECT cohort, months_after, count() AS persons
        FROM
        (
            SELECT
                person,
                arrayReduce('min', months) AS cohort,
                arrayJoin(months) AS month,
                (toYear(month) * 12 + toMonth(month)) - (toYear(cohort) * 12 + toMonth(cohort)) AS months_after
            FROM
            (
                SELECT if(user_id != '', user_id, anonymous_id) AS person, groupUniqArray(toStartOfMonth(event_time)) AS months
                FROM events
                WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != ''
                  AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
                GROUP BY person
            )
            WHERE cohort >= toStartOfMonth($__fromTime)
        )
        GROUP BY cohort, months_after
    )
    GROUP BY cohort
)
ARRAY JOIN rs AS r
ORDER BY cohort, months_after
