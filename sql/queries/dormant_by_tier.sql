-- Dormant and lost customers by tier: at the range's end, customers per tier and how many of them are at risk, dormant or lost; over the range, how many became so and how many were won back.
-- Stage and tier at the end of the range as in customer_stages (the last
-- change at or before it, else the from_value of the first later one, else
-- the current row). became_* count the customers with a stage change into
-- at_risk, dormant or lost within the range; won_back those with a change
-- from one of the three to any other stage (a buyer again). Customers
-- first seen after the range's end are left out; rows written twice
-- collapse (FINAL).
-- Filters (dashboard variables, multi-value; '__all' is the value of All):
-- ${customer_type} and ${tier} keep only the customers of those types and
-- value tiers, by their current row (customers FINAL).
SELECT
    tier,
    count() AS customers,
    countIf(stage = 'at_risk') AS at_risk,
    countIf(stage = 'dormant') AS dormant,
    countIf(stage = 'lost') AS lost,
    round((dormant + lost) / customers, 4) AS dormant_or_lost_share,
    countIf(n_to_at_risk > 0) AS became_at_risk,
    countIf(n_to_dormant > 0) AS became_dormant,
    countIf(n_to_lost > 0) AS became_lost,
    countIf(n_won_back > 0) AS won_back
FROM
(
    SELECT
        multiIf(n_stage_before > 0, stage_before, n_stage_after > 0, stage_after, current_stage) AS stage,
        multiIf(n_tier_before > 0, tier_before, n_tier_after > 0, tier_after, current_tier) AS tier,
        n_to_at_risk, n_to_dormant, n_to_lost, n_won_back
    FROM
    (
        SELECT customer_id, stage AS current_stage, tier AS current_tier
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
            countIf(kind = 'tier' AND at > $__toTime) AS n_tier_after,
            countIf(kind = 'stage' AND to_value = 'at_risk' AND $__timeFilter(at)) AS n_to_at_risk,
            countIf(kind = 'stage' AND to_value = 'dormant' AND $__timeFilter(at)) AS n_to_dormant,
            countIf(kind = 'stage' AND to_value = 'lost' AND $__timeFilter(at)) AS n_to_lost,
            countIf(kind = 'stage' AND from_value IN ('at_risk', 'dormant', 'lost') AND to_value NOT IN ('at_risk', 'dormant', 'lost') AND $__timeFilter(at)) AS n_won_back
        FROM customer_transitions FINAL
        WHERE site = '${site}'
        GROUP BY customer_id
    ) AS t USING (customer_id)
)
GROUP BY tier
ORDER BY tier = '', tier
