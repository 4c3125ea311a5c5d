-- Alert recovery rate: abandoned carts recovered with and without an alert, per site and rule.
-- The hold-out arm (held_out = 1) got no alert. Counts are given so the
-- difference can be judged: z is the two-proportion z statistic (|z| above
-- about 2 is unlikely to be chance). A cart counts as recovered when the
-- processor's cart_abandonments says so (recovered = 1) or the alerter saw
-- its cart.recovered signal (alert_recoveries); both are keyed by the
-- abandonment id the alert carries. Abandonments are those whose signal
-- time is in the dashboard's range; compare ranges older than the recovery
-- window, younger carts may still recover.
SELECT
    site,
    rule,
    n_alerted,
    n_alerted_recovered,
    n_held_out,
    n_held_out_recovered,
    if(n_alerted > 0, n_alerted_recovered / n_alerted, 0) AS rate_alerted,
    if(n_held_out > 0, n_held_out_recovered / n_held_out, 0) AS rate_held_out,
    (n_alerted_recovered + n_held_out_recovered) / (n_alerted + n_held_out) AS pooled,
    if(n_alerted > 0 AND n_held_out > 0 AND pooled > 0 AND pooled < 1,
       (rate_alerted - rate_held_out) / sqrt(pooled * (1 - pooled) * (1 / n_alerted + 1 / n_held_out)), 0) AS z
FROM
(
    SELECT
        site,
        rule,
        countIf(arm = 0) AS n_alerted,
        countIf(arm = 0 AND recovered = 1) AS n_alerted_recovered,
        countIf(arm = 1) AS n_held_out,
        countIf(arm = 1 AND recovered = 1) AS n_held_out_recovered
    FROM
    (
        SELECT site, rule, abandonment_id, max(held_out) AS arm
        FROM alert_deliveries
        WHERE abandonment_id != '' AND final = 1 AND status IN ('sent', 'held_out', 'rejected', 'gave_up')
          AND $__timeFilter(signal_at)
        GROUP BY site, rule, abandonment_id
    ) AS d
    ANY LEFT JOIN
    (
        SELECT abandonment_id, 1 AS recovered
        FROM
        (
            SELECT abandonment_id FROM cart_abandonments WHERE recovered = 1
            UNION ALL
            SELECT abandonment_id FROM alert_recoveries
        )
        GROUP BY abandonment_id
    ) AS r USING abandonment_id
    GROUP BY site, rule
)
ORDER BY site, rule
