-- Page flow: where visitors go from ${page} (for example / for the home page): the pages reached by a link from it, and (exit) for its views no page view came from.
-- From page_links (migration 0042): views of ${page} over the range, and
-- the page views whose referrer is ${page} on the same host, by page
-- (views: distinct page events; visitors: distinct anonymous ids). (exit)
-- is the views of ${page} less the page views referred by it (never below
-- 0; visitors NULL: not known from the rollup). Bots are left out; a
-- redelivered page event counts once; the range is taken in whole hours.
-- For the page viewed next in time within 30 minutes, over raw events, see
-- page_sequence.
SELECT next_page, views, visitors
FROM
(
    SELECT
        other AS next_page,
        toUInt64(sum(n)) AS views,
        toNullable(uniqExactMerge(vs)) AS visitors
    FROM
    (
        SELECT hour, other, uniqExactMerge(views) AS n, uniqExactMergeState(visitors) AS vs
        FROM page_links
        WHERE site = '${site}' AND page = '${page}' AND kind = 'next' AND hour >= toStartOfHour($__fromTime) AND hour <= $__toTime
        GROUP BY hour, other
    )
    GROUP BY next_page
    UNION ALL
    SELECT
        '(exit)' AS next_page,
        toUInt64(greatest(toInt64(sumIf(n, kind = 'view')) - toInt64(sumIf(n, kind = 'next')), 0)) AS views,
        CAST(NULL AS Nullable(UInt64)) AS visitors
    FROM
    (
        SELECT hour, kind, other, uniqExactMerge(views) AS n
        FROM page_links
        WHERE site = '${site}' AND page = '${page}' AND hour >= toStartOfHour($__fromTime) AND hour <= $__toTime
        GROUP BY hour, kind, other
    )
)
ORDER BY views DESC, next_page
LIMIT 50
