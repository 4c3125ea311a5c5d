package alert

import (
	"fmt"
	"strings"
	"time"
)

// The alerter's SQL, in one place so a test runs every statement on
// ClickHouse 18.16 and on current ClickHouse (chDB) alike.

// lookupSQL reads earlier final outcomes of alert ids and the cooldowns of
// subjects (rows since `since`, by signal time).
func lookupSQL(ids, subjects []string, since time.Time) string {
	return `SELECT alert_id, signal_id, site, rule, subject, toUInt32(cooldown_until) FROM alert_deliveries
WHERE final = 1 AND signal_at >= toDateTime(` + fmt.Sprint(max(since.Unix(), 0)) + `)
  AND (alert_id IN ` + inSet(ids) + ` OR (subject IN ` + inSet(subjects) + ` AND cooldown_until > toDateTime(0)))`
}

// doneSQL reads which of ids have a final outcome, in lookupSQL's columns.
func doneSQL(ids []string) string {
	return `SELECT alert_id, '', '', '', '', toUInt32(0) FROM alert_deliveries WHERE final = 1 AND alert_id IN ` + inSet(ids)
}

// inSet is the right side of an IN over many strings: a subquery over one
// array literal. ClickHouse 18.16 parses a list of 2,000 literals (a
// batch's alert ids and subjects) in about 22 ms of CPU and the array in a
// fifth of that; per batch of signals this was most of the look-up's cost.
func inSet(ss []string) string {
	if len(ss) == 0 {
		return `(SELECT arrayJoin(emptyArrayString()))`
	}
	return `(SELECT arrayJoin([` + quoteList(ss) + `]))`
}

// cooldownsSQL reads the cooldowns running after `after`.
func cooldownsSQL(after time.Time) string {
	return `SELECT site, rule, subject, signal_id, toUInt32(cooldown_until) FROM alert_deliveries
WHERE final = 1 AND cooldown_until > toDateTime(` + fmt.Sprint(max(after.Unix(), 0)) + `)`
}

// digestEntriesSQL reads a digest rule's entries of the day ending at `at`.
func digestEntriesSQL(rule string, at time.Time) string {
	return fmt.Sprintf(`SELECT destination, payload FROM alert_deliveries
WHERE rule = %s AND status = 'digest_pending' AND signal_at >= toDateTime(%d) AND signal_at < toDateTime(%d)`,
		quoteList([]string{rule}), at.Add(-24*time.Hour).Unix(), at.Unix())
}

// activeSitesSQL lists the sites with events in the hour before now.
func activeSitesSQL(now time.Time) string {
	return fmt.Sprintf(`SELECT DISTINCT site FROM events
WHERE event_time >= toDateTime(%d) AND event_time < toDateTime(%d)`, now.Add(-time.Hour).Unix(), now.Unix())
}

// windowsSQL reads a site's span (an hour to a day) before now and the same
// span of each of the previous weeks (window 0 is now's, k is k weeks before): funnel
// counts, per-product views, adds and mean viewed price, sessions per
// source.
func windowsSQL(site string, now time.Time, weeks int, span time.Duration) (funnel, products, sources string) {
	var cond, which []string
	for k := 0; k <= weeks; k++ {
		end := now.Add(-time.Duration(k) * 7 * 24 * time.Hour)
		r := fmt.Sprintf("(%%[1]s >= toDateTime(%d) AND %%[1]s < toDateTime(%d))", end.Add(-span).Unix(), end.Unix())
		cond = append(cond, r)
		which = append(which, r, fmt.Sprint(k))
	}
	forCol := func(col string) (where, window string) {
		c := make([]string, len(cond))
		for i := range cond {
			c[i] = fmt.Sprintf(cond[i], col)
		}
		w := make([]string, len(which))
		for i := range which {
			if i%2 == 0 {
				w[i] = fmt.Sprintf(which[i], col)
			} else {
				w[i] = which[i]
			}
		}
		return strings.Join(c, " OR "), "toInt8(multiIf(" + strings.Join(w, ", ") + ", -1))"
	}
	ec, ew := forCol("event_time")
	sc, sw := forCol("start_time")
	s := quoteList([]string{site})
	funnel = `SELECT ` + ew + ` AS w, event, uniqExact(message_id) FROM events
WHERE site = ` + s + ` AND is_bot = 0 AND event IN ('Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed') AND (` + ec + `)
GROUP BY w, event`
	products = `SELECT ` + ew + ` AS w, product_id, uniqExactIf(message_id, event = 'Product Viewed'),
  uniqExactIf(message_id, event = 'Product Added'), if(countIf(event = 'Product Viewed' AND price > 0) > 0, avgIf(price, event = 'Product Viewed' AND price > 0), 0)
FROM events
WHERE site = ` + s + ` AND is_bot = 0 AND product_id != '' AND event IN ('Product Viewed', 'Product Added') AND (` + ec + `)
GROUP BY w, product_id`
	sources = `SELECT ` + sw + ` AS w, source, count() FROM sessions FINAL
WHERE site = ` + s + ` AND is_bot = 0 AND (` + sc + `)
GROUP BY w, source`
	return funnel, products, sources
}

// hotLeadSQL reads, for a site's window, per visitor: the customer id its
// events carried, inquiries and orders (first query); views per product of
// 2 or more (second); and the visitors with a returning session (third).
func hotLeadSQL(site string, from, to time.Time) (visitors, views, returning string) {
	s := quoteList([]string{site})
	rng := fmt.Sprintf("event_time >= toDateTime(%d) AND event_time < toDateTime(%d)", from.Unix(), to.Unix())
	visitors = `SELECT anonymous_id, max(user_id), uniqExactIf(message_id, event = 'Inquiry Started'), uniqExactIf(message_id, event = 'Order Completed')
FROM events WHERE site = ` + s + ` AND is_bot = 0 AND anonymous_id != '' AND ` + rng + `
GROUP BY anonymous_id
HAVING uniqExactIf(message_id, event = 'Order Completed') = 0
LIMIT 100000`
	views = `SELECT anonymous_id, product_id, uniqExact(message_id) AS n FROM events
WHERE site = ` + s + ` AND is_bot = 0 AND event = 'Product Viewed' AND product_id != '' AND ` + rng + `
GROUP BY anonymous_id, product_id
HAVING n >= 2
ORDER BY n DESC
LIMIT 100000`
	returning = fmt.Sprintf(`SELECT DISTINCT anonymous_id FROM sessions FINAL
WHERE site = %s AND is_bot = 0 AND is_returning = 1 AND start_time >= toDateTime(%d) AND start_time < toDateTime(%d)
LIMIT 100000`, s, from.Add(-24*time.Hour).Unix(), to.Unix())
	return visitors, views, returning
}
