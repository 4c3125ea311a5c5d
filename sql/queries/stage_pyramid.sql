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
-- Each row carries its person's flags as bits (1 active, 2 registered, 4
-- potential), OR-ed per person; the distinct orders are counted per person
-- on person_facts alone, so the grouping of every active visitor holds
-- only fixed-size states (a uniqExact per person cost more than the rest).
-- For the customer stage's own pyramid see customer_stages.
SELECT
    stage,
    persons
FROM
(
    SELECT
        multiIf(orders >= 4, 7, orders = 3, 6, orders = 2, 5, orders = 1, 4, bitAnd(flags, 4) != 0, 3, bitAnd(flags, 2) != 0, 2, 1) AS level,
        ['stranger', 'registered', 'potential', 'first-time', 'second-time', 'third-time', 'loyal'][level] AS stage,
        count() AS persons
    FROM
    (
        SELECT
            person,
            sum(n) AS orders,
            groupBitOr(f) AS flags
        FROM
        (
            -- activity in the range, one row per visitor, user id and day
            SELECT
                if(linked != 0, linked, if(user_id != '', sipHash64(user_id), a)) AS person,
                toUInt8(1 + 2 * (user_id != '') + 4 * potential) AS f,
                toUInt64(0) AS n
            FROM
            (
                SELECT sipHash64(anonymous_id) AS a, user_id, potential
                FROM visitor_days
                WHERE site = '${site}' AND day >= toDate($__fromTime) AND day <= toDate($__toTime)
            ) AS v
            ANY LEFT JOIN
            (
                SELECT a, if(c = '', toUInt64(0), sipHash64(c)) AS linked
                FROM (SELECT sipHash64(anonymous_id) AS a, any(customer_id) AS c FROM identity_links WHERE site = '${site}' GROUP BY a)
            ) AS l USING (a)
            UNION ALL
            -- sign-ups and orders up to the end of the range, one row per person
            SELECT person, toUInt8(2 * max(registered)) AS f, uniqExactIf(order_id, order_id != '') AS n
            FROM
            (
                SELECT
                    if(linked != 0, linked, if(user_id != '', sipHash64(user_id), a)) AS person,
                    event = 'Signed Up' OR user_id != '' AS registered,
                    if(event = 'Order Completed', order_id, '') AS order_id
                FROM
                (
                    SELECT sipHash64(anonymous_id) AS a, user_id, event, order_id
                    FROM person_facts
                    WHERE site = '${site}' AND event_time <= $__toTime
                ) AS p
                ANY LEFT JOIN
                (
                    SELECT a, if(c = '', toUInt64(0), sipHash64(c)) AS linked
                    FROM (SELECT sipHash64(anonymous_id) AS a, any(customer_id) AS c FROM identity_links WHERE site = '${site}' GROUP BY a)
                ) AS l USING (a)
            )
            GROUP BY person
        )
        GROUP BY person
        HAVING bitAnd(flags, 1) = 1
    )
    GROUP BY level
)
ORDER BY level
