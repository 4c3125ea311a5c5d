-- Stage pyramid: the persons active in the range, each counted once in the highest stage reached: stranger, registered, potential, first-time, second-time, third-time, loyal customer.
-- A person is the customer an anonymous id is linked to (identity_links),
-- else the event's userId, else the anonymous id. registered: signed up or
-- seen with a userId; potential: carted, favorited or inquired in the range;
-- first/second/third-time and loyal (4+): distinct orders (Order Completed)
-- up to the end of the range. Bots are left out.
SELECT
    stage,
    persons
FROM
(
    SELECT
        multiIf(orders >= 4, 7, orders = 3, 6, orders = 2, 5, orders = 1, 4, potential, 3, registered, 2, 1) AS level,
        ['stranger', 'registered', 'potential', 'first-time', 'second-time', 'third-time', 'loyal'][level] AS stage,
        count() AS persons
    FROM
    (
        SELECT
            person,
            uniqExactIf(order_id, event = 'Order Completed' AND order_id != '') AS orders,
            countIf(event IN ('Product Added', 'Product Added to Wishlist', 'Inquiry Started') AND event_time >= $__fromTime) > 0 AS potential,
            (countIf(event = 'Signed Up') > 0 OR max(user_id != '') = 1) AS registered
        FROM
        (
            SELECT if(linked != '', linked, if(user_id != '', user_id, anonymous_id)) AS person, event, order_id, user_id, event_time
            FROM
            (
                SELECT anonymous_id, user_id, event, order_id, event_time
                FROM events
                WHERE site = '${site}' AND is_bot = 0
                  AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
                UNION ALL
                SELECT anonymous_id, user_id, event, order_id, event_time
                FROM events
                WHERE site = '${site}' AND is_bot = 0 AND event IN ('Order Completed', 'Signed Up')
                  AND toDate(event_time) <= toDate($__fromTime) AND event_time < $__fromTime
            ) AS e
            ANY LEFT JOIN
            (
                SELECT anonymous_id, any(customer_id) AS linked
                FROM identity_links
                WHERE site = '${site}'
                GROUP BY anonymous_id
            ) AS l USING (anonymous_id)
        )
        GROUP BY person
        HAVING countIf(event_time >= $__fromTime) > 0
    )
    GROUP BY level
)
ORDER BY level
