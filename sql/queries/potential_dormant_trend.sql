-- Potential-dormant trend: per period, customers who became potential-dormant (carted, favorited or inquired and never bought within the threshold), those who left it (bought, or moved on), and how many are potential-dormant at the period's end, with growth against the previous period.
-- From the customer stage's changes (customer_transitions, kind 'stage'):
-- entered counts changes into potential_dormant, exited changes out of it
-- (distinct transition ids: a change written twice counts once). at_end is
-- every change into it up to the period's end less every change out of it
-- (a customer reaches potential_dormant only by a change). Periods without
-- a change have no row; prev_entered is the period just before (0 when it
-- had none).
-- Filters (dashboard variables, multi-value; '__all' is the value of All):
-- ${customer_type} and ${tier} keep only the customers of those types and
-- value tiers, by their current row (customers FINAL).
SELECT
    period,
    entered,
    exited,
    at_end,
    prev_entered,
    if(prev_entered = 0, NULL, round((entered - prev_entered) / prev_entered, 4)) AS entered_growth
FROM
(
    SELECT
        groupArray(p) AS ps,
        groupArray(e) AS es,
        groupArray(l) AS ls,
        arrayCumSum(arrayMap((x, y) -> toInt64(x) - toInt64(y), es, ls)) AS ends
    FROM
    (
        SELECT
            ${grain}(at) AS p,
            uniqExactIf(transition_id, to_value = 'potential_dormant') AS e,
            uniqExactIf(transition_id, from_value = 'potential_dormant') AS l
        FROM customer_transitions
        WHERE site = '${site}' AND kind = 'stage' AND at <= $__toTime
          AND (to_value = 'potential_dormant' OR from_value = 'potential_dormant')
            AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
                AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
                AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
        GROUP BY p
        ORDER BY p
    )
)
ARRAY JOIN
    ps AS period,
    es AS entered,
    ls AS exited,
    ends AS at_end,
    arrayMap(x -> if(indexOf(ps, ${grain}(x - 1)) = 0, toUInt64(0), es[indexOf(ps, ${grain}(x - 1))]), ps) AS prev_entered
WHERE period >= ${grain}(toDate($__fromTime))
ORDER BY period
