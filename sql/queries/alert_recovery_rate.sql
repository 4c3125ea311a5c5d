-- Recovery rate of abandoned carts with and without alerts, per site and
-- rule: the hold-out arm (held_out = 1) got no alert. Counts are given so
-- the difference can be judged (a two-proportion z statistic is included:
-- |z| above about 2 is unlikely to be chance). Compare abandonments older
-- than the recovery window: younger ones may still recover.
SELECT
    site,
    rule,
    countIf(held_out = 0) AS alerted,
    countIf(held_out = 0 AND recovered = 1) AS alerted_recovered,
    countIf(held_out = 1) AS held_out,
    countIf(held_out = 1 AND recovered = 1) AS held_out_recovered,
    if(alerted > 0, alerted_recovered / alerted, 0) AS rate_alerted,
    if(held_out > 0, held_out_recovered / held_out, 0) AS rate_held_out,
    (alerted_recovered + held_out_recovered) / (alerted + held_out) AS pooled,
    if(alerted > 0 AND held_out > 0 AND pooled > 0 AND pooled < 1,
       (rate_alerted - rate_held_out) / sqrt(pooled * (1 - pooled) * (1 / alerted + 1 / held_out)), 0) AS z
FROM
(
    SELECT site, rule, abandonment_id, max(held_out) AS held_out
    FROM alert_deliveries
    WHERE abandonment_id != '' AND final = 1 AND status IN ('sent', 'held_out', 'rejected', 'gave_up')
    GROUP BY site, rule, abandonment_id
) AS d
ANY LEFT JOIN
(
    SELECT abandonment_id, 1 AS recovered
    FROM alert_recoveries
    GROUP BY abandonment_id
) AS r USING abandonment_id
GROUP BY site, rule
ORDER BY site, rule
