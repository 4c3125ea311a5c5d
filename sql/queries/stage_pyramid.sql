-- Stage pyramid: the persons active in the range, each counted once in the highest stage reached: stranger, registered, potential, first-time, second-time, third-time, loyal customer.
-- A person is the customer an anonymous id is linked to (identity_links),
-- else the event's userId, else the anonymous id. registered: signed up or
-- seen with a userId; potential: carted, favorited or inquired in the range;
-- first/second/third-time and loyal (4+): distinct orders (Order Completed)
-- up to the end of the range. Bots are left out. Activity and potential
-- come from visitor_days (migration 0041: one row per visitor, user id and
-- day, so the range is taken in whole days), orders and sign-ups from
-- person_facts (one row per event id); both collapse redelivered events.
-- Persons are grouped by the 64-bit sipHash64 of their id, and visitors
-- joined to their links by that of their anonymous id.
-- For the customer stage's own pyramid see customer_stages.
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
            uniqExactIf(order_id, order_id != '') AS orders,
            max(potential) = 1 AS potential,
            (max(signed_up) = 1 OR max(user_id != '') = 1) AS registered
        FROM
        (
            SELECT if(linked != '', sipHash64(linked), if(user_id != '', sipHash64(user_id), a)) AS person, active, potential, signed_up, order_id, user_id
            FROM
            (
                SELECT sipHash64(anonymous_id) AS a, user_id, toUInt8(1) AS active, potential, toUInt8(0) AS signed_up, '' AS order_id
                FROM visitor_days
                WHERE site = '${site}' AND day >= toDate($__fromTime) AND day <= toDate($__toTime)
                UNION ALL
                SELECT sipHash64(anonymous_id) AS a, user_id, toUInt8(0) AS active, toUInt8(0) AS potential, toUInt8(event = 'Signed Up') AS signed_up, if(event = 'Order Completed', order_id, '') AS order_id
                FROM person_facts
                WHERE site = '${site}' AND event_time <= $__toTime
            ) AS e
            ANY LEFT JOIN
            (
                SELECT sipHash64(anonymous_id) AS a, any(customer_id) AS linked
                FROM identity_links
                WHERE site = '${site}'
                GROUP BY a
            ) AS l USING (a)
        )
        GROUP BY person
        HAVING max(active) = 1
    )
    GROUP BY level
)
ORDER BY level
