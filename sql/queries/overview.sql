-- Overview: today against the same day last week, up to the same time of day: visitors, sessions, orders, revenue, conversion, abandoned cart value, alerts sent, and the age of the newest event.
-- "Today" is the day of the range's end ($__toTime), from midnight to that
-- time; "last week" the same span seven days earlier, so a comparison in the
-- morning is not against a whole day. conversion is the share of sessions
-- with an order. abandoned_value_* is the value of the carts abandoned
-- (cart_abandonments, FINAL; recovered ones included). alerts_* count alerts the alerter delivered (final status
-- sent). newest_event_age_s is the seconds since the collector received the
-- site's newest event: the pipeline's freshness (large when tracking stopped
-- or the processor is behind). Bots are left out; sessions are read with
-- FINAL (sessions_by_start: only the two days), so a row written twice
-- counts once.
SELECT
    uniqExactIf(anonymous_id, start_time >= toStartOfDay($__toTime)) AS visitors_today,
    uniqExactIf(anonymous_id, start_time < toStartOfDay($__toTime)) AS visitors_last_week,
    countIf(start_time >= toStartOfDay($__toTime)) AS sessions_today,
    countIf(start_time < toStartOfDay($__toTime)) AS sessions_last_week,
    sumIf(orders, start_time >= toStartOfDay($__toTime)) AS orders_today,
    sumIf(orders, start_time < toStartOfDay($__toTime)) AS orders_last_week,
    round(sumIf(revenue, start_time >= toStartOfDay($__toTime)), 2) AS revenue_today,
    round(sumIf(revenue, start_time < toStartOfDay($__toTime)), 2) AS revenue_last_week,
    if(sessions_today = 0, NULL, round(countIf(orders > 0 AND start_time >= toStartOfDay($__toTime)) / sessions_today, 4)) AS conversion_today,
    if(sessions_last_week = 0, NULL, round(countIf(orders > 0 AND start_time < toStartOfDay($__toTime)) / sessions_last_week, 4)) AS conversion_last_week,
    (
        SELECT round(sum(value), 2) FROM cart_abandonments FINAL
        WHERE site = '${site}' AND abandoned_at >= toStartOfDay($__toTime) AND abandoned_at <= $__toTime
    ) AS abandoned_value_today,
    (
        SELECT round(sum(value), 2) FROM cart_abandonments FINAL
        WHERE site = '${site}' AND abandoned_at >= toStartOfDay($__toTime) - 7 * 86400 AND abandoned_at <= $__toTime - 7 * 86400
    ) AS abandoned_value_last_week,
    (
        SELECT count() FROM alert_deliveries
        WHERE site = '${site}' AND final = 1 AND status = 'sent'
          AND recorded_at >= toStartOfDay($__toTime) AND recorded_at <= $__toTime
    ) AS alerts_today,
    (
        SELECT count() FROM alert_deliveries
        WHERE site = '${site}' AND final = 1 AND status = 'sent'
          AND recorded_at >= toStartOfDay($__toTime) - 7 * 86400 AND recorded_at <= $__toTime - 7 * 86400
    ) AS alerts_last_week,
    (
        SELECT toInt64(toUInt32(now())) - toInt64(toUInt32(max(received_at))) FROM events
        WHERE site = '${site}' AND toDate(event_time) >= toDate(now() - 7 * 86400) AND event_time >= now() - 7 * 86400
    ) AS newest_event_age_s
FROM sessions_by_start FINAL
WHERE site = '${site}' AND is_bot = 0
  AND ((toDate(start_time) = toDate($__toTime) AND start_time >= toStartOfDay($__toTime) AND start_time <= $__toTime)
    OR (toDate(start_time) = toDate($__toTime) - 7 AND start_time >= toStartOfDay($__toTime) - 7 * 86400 AND start_time <= $__toTime - 7 * 86400))
