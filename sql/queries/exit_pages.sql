-- Exit pages: the pages sessions end on, with the share of all sessions that ended there, top 50 over the range.
-- bounces are the sessions that also started there and saw one page without
-- engagement. Bots are left out; sessions are read with FINAL, so a row
-- written twice counts once.
SELECT
    exit_page,
    exits,
    round(exits / (
        SELECT count() FROM sessions_by_start FINAL
        WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
    ), 4) AS exit_share,
    bounces,
    visitors
FROM
(
    SELECT
        exit_page,
        count() AS exits,
        countIf(page_views <= 1 AND is_engaged = 0) AS bounces,
        uniqExact(anonymous_id) AS visitors
    FROM sessions_by_start FINAL
    WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
    GROUP BY exit_page
)
ORDER BY exits DESC, exit_page
LIMIT 50
