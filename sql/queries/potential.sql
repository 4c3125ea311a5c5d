-- Potential stage: visitors who favorited, carted or inquired per period, and the potential-dormant among them (never ordered by the end of the range), with the trend against the previous period.
-- A person is the customer id (userId) when the event has one, else the
-- anonymous id. potential counts persons with any of the three;
-- potential_dormant those of them with no Order Completed (same person) up
-- to the end of the range (person_facts, migration 0041: the orders alone,
-- not every event's day). Bots are left out; duplicates count once.
SELECT
    period,
    favoriters,
    carters,
    inquirers,
    potential,
    potential_dormant,
    if(potential = 0, NULL, round(potential_dormant / potential, 4)) AS dormant_share,
    prev_potential_dormant,
    if(prev_potential_dormant = 0, NULL, round((potential_dormant - prev_potential_dormant) / prev_potential_dormant, 4)) AS dormant_growth
FROM
(
    SELECT
        ${grain}(event_time) AS period,
        ${grain}(period - 1) AS prev_period,
        uniqExactIf(person, event = 'Product Added to Wishlist') AS favoriters,
        uniqExactIf(person, event = 'Product Added') AS carters,
        uniqExactIf(person, event = 'Inquiry Started') AS inquirers,
        uniqExact(person) AS potential,
        uniqExactIf(person, NOT buyer) AS potential_dormant
    FROM
    (
        SELECT
            event_time, event,
            if(user_id != '', user_id, anonymous_id) AS person,
            person IN
            (
                SELECT if(user_id != '', user_id, anonymous_id) FROM person_facts
                WHERE site = '${site}' AND event = 'Order Completed' AND event_time <= $__toTime
            ) AS buyer
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
          AND event IN ('Product Added to Wishlist', 'Product Added', 'Inquiry Started')
    )
    GROUP BY period
) AS cur
ANY LEFT JOIN
(
    SELECT
        ${grain}(event_time) AS prev_period,
        uniqExactIf(person, NOT buyer) AS prev_potential_dormant
    FROM
    (
        SELECT
            event_time,
            if(user_id != '', user_id, anonymous_id) AS person,
            person IN
            (
                SELECT if(user_id != '', user_id, anonymous_id) FROM person_facts
                WHERE site = '${site}' AND event = 'Order Completed' AND event_time <= $__toTime
            ) AS buyer
        FROM events
        WHERE site = '${site}' AND is_bot = 0
          AND toDate(event_time) >= ${grain}(${grain}($__fromTime) - 1) AND event_time >= toDateTime(${grain}(${grain}($__fromTime) - 1)) AND event_time < $__fromTime
          AND event IN ('Product Added to Wishlist', 'Product Added', 'Inquiry Started')
    )
    GROUP BY prev_period
) AS prev USING (prev_period)
ORDER BY period
