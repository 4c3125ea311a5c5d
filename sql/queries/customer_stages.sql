-- Customer stages: the stage pyramid of the customer stage (table customers), every customer first seen by the range's end counted once, in its stage at the range's end, by ${segment}.
-- The stage at the end of the range is the to_value of the customer's last
-- stage change (customer_transitions) at or before it; for a customer whose
-- changes all came later, the from_value of the first of them; for one
-- without changes, the stage of its current row (customers FINAL). Changes
-- within one second are ordered along the ladder. tier is found the same
-- way from the tier changes; customer_type and first_channel are the
-- current row's. ${segment}: customer_type, tier, first_channel, or site
-- for one row per stage. share is the stage's part of the segment's
-- customers. Rows written twice collapse (FINAL).
-- Filters (dashboard variables, multi-value; '__all' is the value of All):
-- ${customer_type} and ${tier} keep only the customers of those types and
-- value tiers, by their current row (customers FINAL).
SELECT
    stage,
    key,
    customers,
    round(customers / key_customers, 4) AS share
FROM
(
    SELECT stage, toString(${segment}) AS key, count() AS customers
    FROM
    (
        SELECT
            '${site}' AS site,
            multiIf(n_stage_before > 0, stage_before, n_stage_after > 0, stage_after, current_stage) AS stage,
            multiIf(n_tier_before > 0, tier_before, n_tier_after > 0, tier_after, current_tier) AS tier,
            customer_type,
            first_channel
        FROM
        (
            SELECT customer_id, stage AS current_stage, tier AS current_tier, customer_type, first_channel
            FROM customers FINAL
            WHERE site = '${site}' AND first_seen <= $__toTime
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))
        ) AS c
        ANY LEFT JOIN
        (
            SELECT
                customer_id,
                argMaxIf(to_value, toUInt64(at) * 16 + indexOf(['stranger', 'registered', 'potential', 'potential_dormant', 'first_buyer', 'second_buyer', 'third_buyer', 'loyal', 'at_risk', 'dormant', 'lost'], to_value), kind = 'stage' AND at <= $__toTime) AS stage_before,
                countIf(kind = 'stage' AND at <= $__toTime) AS n_stage_before,
                argMinIf(from_value, toUInt64(at) * 16 + indexOf(['stranger', 'registered', 'potential', 'potential_dormant', 'first_buyer', 'second_buyer', 'third_buyer', 'loyal', 'at_risk', 'dormant', 'lost'], from_value), kind = 'stage' AND at > $__toTime) AS stage_after,
                countIf(kind = 'stage' AND at > $__toTime) AS n_stage_after,
                argMaxIf(to_value, at, kind = 'tier' AND at <= $__toTime) AS tier_before,
                countIf(kind = 'tier' AND at <= $__toTime) AS n_tier_before,
                argMinIf(from_value, at, kind = 'tier' AND at > $__toTime) AS tier_after,
                countIf(kind = 'tier' AND at > $__toTime) AS n_tier_after
            FROM customer_transitions FINAL
            WHERE site = '${site}'
            GROUP BY customer_id
        ) AS t USING (customer_id)
    )
    GROUP BY stage, key
) AS s
ANY LEFT JOIN
(
    SELECT toString(${segment}) AS key, count() AS key_customers
    FROM
    (
        SELECT
            '${site}' AS site,
            multiIf(n_tier_before > 0, tier_before, n_tier_after > 0, tier_after, current_tier) AS tier,
            customer_type,
            first_channel
        FROM
        (
            SELECT customer_id, tier AS current_tier, customer_type, first_channel
            FROM customers FINAL
            WHERE site = '${site}' AND first_seen <= $__toTime
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))
        ) AS c
        ANY LEFT JOIN
        (
            SELECT
                customer_id,
                argMaxIf(to_value, at, kind = 'tier' AND at <= $__toTime) AS tier_before,
                countIf(kind = 'tier' AND at <= $__toTime) AS n_tier_before,
                argMinIf(from_value, at, kind = 'tier' AND at > $__toTime) AS tier_after,
                countIf(kind = 'tier' AND at > $__toTime) AS n_tier_after
            FROM customer_transitions FINAL
            WHERE site = '${site}' AND kind = 'tier'
            GROUP BY customer_id
        ) AS t USING (customer_id)
    )
    GROUP BY key
) AS k USING (key)
ORDER BY key, indexOf(['stranger', 'registered', 'potential', 'potential_dormant', 'first_buyer', 'second_buyer', 'third_buyer', 'loyal', 'at_risk', 'dormant', 'lost'], stage), stage
