-- Funnel over chosen steps: visitors who did the chosen events in order, each within the window of the first (windowFunnel over raw events).
-- ${steps} is a multi-value variable of event names (at most 8, in order),
-- for example 'Product Viewed','Product Added','Checkout Started','Order Completed';
-- ${window_s} the conversion window in seconds. One row per step: the
-- visitors who got at least that far, the share of the first step and of
-- the step before. Bots are left out; a duplicated event changes nothing.
SELECT
    step,
    [${steps}][step] AS event_name,
    visitors,
    if(first = 0, NULL, round(visitors / first, 4)) AS of_first,
    if(previous = 0, NULL, round(visitors / previous, 4)) AS of_previous
FROM
(
    SELECT
        reached,
        arrayEnumerate(reached) AS steps,
        arrayMap(i -> reached[1], steps) AS firsts,
        arrayMap(i -> if(i = 1, reached[1], reached[i - 1]), steps) AS previouses
    FROM
    (
        SELECT sumForEach(arrayMap(i -> toUInt64(level >= i), arrayEnumerate([${steps}]))) AS reached
        FROM
        (
            SELECT
                anonymous_id,
                windowFunnel(${window_s})(event_time,
                    event = [${steps}][1], event = [${steps}][2], event = [${steps}][3], event = [${steps}][4],
                    event = [${steps}][5], event = [${steps}][6], event = [${steps}][7], event = [${steps}][8]) AS level
            FROM events
            WHERE site = '${site}' AND is_bot = 0 AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time) AND event IN (${steps})
            GROUP BY anonymous_id
        )
    )
)
ARRAY JOIN steps AS step, reached AS visitors, firsts AS first, previouses AS previous
ORDER BY step
