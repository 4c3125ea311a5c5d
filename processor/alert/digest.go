package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// Digests: a digest rule's alerts are recorded as digest_pending rows
// (their signals committed at once). Once a day, at the rule's time in the
// site's time zone, the alerter gathers the day's pending rows (signal time
// in the 24 hours before) per group and sends one digest per group and
// destination. Its id is derived from rule, group, day and destination, so
// an alerter that restarts, or a second alerter, finds it already sent in
// alert_deliveries and does not send it again (two alerters at the very same
// moment may both send it, with the same webhook-id). Today's and
// yesterday's digests are checked, so an alerter down at digest time sends
// them when it is back.

// runDigests checks the digest rules every interval until ctx ends.
func (a *Alerter) runDigests(ctx context.Context, every time.Duration) {
	for {
		if err := a.sendDueDigests(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("cannot send digests; trying again later", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(every):
		}
	}
}

func (a *Alerter) sendDueDigests(ctx context.Context) error {
	set := a.rules.Load()
	now := a.clock.Now()
	for _, site := range set.Sites {
		for _, r := range site.Rules {
			if r.Digest == nil {
				continue
			}
			local := now.In(site.Location)
			today := time.Date(local.Year(), local.Month(), local.Day(), r.Digest.At/60, r.Digest.At%60, 0, 0, site.Location)
			for _, at := range []time.Time{today.AddDate(0, 0, -1), today} {
				if at.After(now) {
					continue
				}
				if err := a.sendDigest(ctx, set, site, r, at); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sendDigest queues the digests of rule r for the day ending at `at`.
func (a *Alerter) sendDigest(ctx context.Context, set *rules.Set, site *rules.Site, r *rules.Rule, at time.Time) error {
	rows, err := a.conn.Query(ctx, digestEntriesSQL(r.Name, at))
	if err != nil {
		return fmt.Errorf("cannot read pending digest entries: %w", err)
	}
	type key struct{ group, dest string }
	groups := map[key][]notify.DigestItem{}
	seen := map[string]bool{}
	for rows.Next() {
		var dest, payload string
		if err := rows.Scan(&dest, &payload); err != nil {
			rows.Close()
			return err
		}
		var it notify.DigestItem
		if json.Unmarshal([]byte(payload), &it) != nil {
			continue
		}
		group := dest
		if r.Digest.GroupBy == rules.GroupByChannel {
			group = it.Channel
			if group == "" {
				group = "(unknown channel)"
			}
		}
		k := key{group, dest}
		// A replayed signal may have recorded its entry twice.
		if id := k.group + "\x00" + k.dest + "\x00" + it.Subject + "\x00" + it.At.String(); !seen[id] {
			seen[id] = true
			groups[k] = append(groups[k], it)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	day := at.Format("2006-01-02")
	var ids []string
	for k := range groups {
		ids = append(ids, rules.DigestID(r.Name, k.group, day, k.dest))
	}
	if len(ids) == 0 {
		return nil
	}
	done, err := a.runLookup(ctx, doneSQL(ids))
	if err != nil {
		return fmt.Errorf("cannot read sent digests: %w", err)
	}
	for k, items := range groups {
		id := rules.DigestID(r.Name, k.group, day, k.dest)
		d := set.Destinations[k.dest]
		if done[id] || d == nil || !a.claim(id) {
			continue
		}
		sort.Slice(items, func(i, j int) bool { return items[i].NetRevenue > items[j].NetRevenue })
		al := &notify.Alert{ID: id, Type: notify.TypeDigest, Rule: r.Name, Site: site.ID, At: at, Subject: k.group,
			Group: k.group, Digest: items}
		row := Row{AlertID: id, SignalType: "digest", Site: site.ID, Rule: r.Name, Subject: k.group, Destination: k.dest,
			SignalAt: at, Alerter: a.cfg.ID}
		now := a.clock.Now()
		it := &item{alert: al, dest: d, row: row, decidedAt: now, due: now,
			done: func() { a.imu.Lock(); delete(a.inflight, id); a.imu.Unlock() }}
		a.queue(d).push(it)
	}
	return nil
}
