-- Stage flows: the customers' changes of lifecycle stage per period (customer_transitions), from one stage to another, by ${segment}.
-- changes counts distinct changes (transition_id: a change written twice
-- counts once), customers the distinct customers making them. cause is
-- 'event' (an order, a sign-up ...) or 'timer' (at_risk, dormant, lost,
-- potential_dormant thresholds). ${segment}: customer_type, tier,
-- first_channel (the customer's current row, customers FINAL), or site for
-- no breakdown.
-- Filters (dashboard variables, multi-value; '__all' is the value of All):
-- ${customer_type} and ${tier} keep only the customers of those types and
-- value tiers, by their current row (customers FINAL).
SELECT
    ${grain}(at) AS period,
    toString(${segment}) AS key,
    from_value AS from_stage,
    to_value AS to_stage,
    uniqExact(transition_id) AS changes,
    uniqExact(customer_id) AS customers,
    uniqExactIf(transition_id, cause_kind = 'event') AS by_event,
    uniqExactIf(transition_id, cause_kind = 'timer') AS by_timer
FROM
(
    SELECT transition_id, customer_id, from_value, to_value, at, site,
        substring(cause, 1, position(cause, ':') - 1) AS cause_kind
    FROM customer_transitions
    WHERE site = '${site}' AND kind = 'stage' AND $__timeFilter(at)
      AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
          AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
          AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
) AS t
ANY LEFT JOIN
(
    SELECT customer_id, customer_type, tier, first_channel
    FROM customers FINAL
    WHERE site = '${site}'
) AS c USING (customer_id)
GROUP BY period, key, from_stage, to_stage
ORDER BY period, key, changes DESC, from_stage, to_stage
