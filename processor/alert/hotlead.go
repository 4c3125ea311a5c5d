package alert

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// Hot leads are checked with the conversion drops (every DropInterval):
// a known customer (the events carry a user id) or a returning visitor (a
// returning session) who, within the rule's window, viewed one product at
// least min_views times or started an inquiry, and ordered nothing. One
// alert per subject and day, then the rule's cooldown (24h by default),
// kept like a customer's; the hold-out applies as for carts.

func (a *Alerter) checkHotLeads(ctx context.Context, set *rules.Set, site string, r *rules.Rule, now time.Time) error {
	leads, err := a.readHotLeads(ctx, site, r, now)
	if err != nil {
		return err
	}
	day := now.UTC().Format("2006-01-02")
	for _, l := range leads {
		subject := l.CustomerID
		if subject == "" {
			subject = "anon:" + l.AnonymousID
		}
		key := rules.CooldownKey(site, r.Name, subject)
		signalID := "hotlead|" + site + "|" + subject + "|" + day
		if a.cd.active(key, now, hash64(signalID)) {
			continue // within the cooldown: not decided again
		}
		a.m.decided.WithLabelValues(r.Name).Inc()
		var ids []string
		for _, dn := range r.To {
			ids = append(ids, rules.AlertID(signalID, r.Name, dn))
		}
		done, err := a.runLookup(ctx, doneSQL(ids))
		if err != nil {
			return fmt.Errorf("cannot read sent hot-lead alerts: %w", err)
		}
		until := now.Add(r.Cooldown)
		a.cd.set(key, until, hash64(signalID))
		held := rules.HeldOut(site, r.Name, subject, r.HoldOut)
		for i, dn := range r.To {
			d := set.Destinations[dn]
			if d == nil || done[ids[i]] || !a.claim(ids[i]) {
				continue
			}
			id := ids[i]
			row := Row{AlertID: id, SignalID: signalID, SignalType: "hot_lead", Site: site, Rule: r.Name, Subject: subject,
				Destination: dn, SignalAt: now, CooldownUntil: until, Alerter: a.cfg.ID, HeldOut: held, RecordedAt: a.clock.Now()}
			release := func() { a.imu.Lock(); delete(a.inflight, id); a.imu.Unlock() }
			if held {
				a.m.suppressed.WithLabelValues(reasonHoldOut).Inc()
				row.Status, row.Final, row.done = StatusHeldOut, true, release
				a.rec.add(row)
				continue
			}
			l := l
			al := &notify.Alert{ID: id, Type: notify.TypeHotLead, Rule: r.Name, Site: site, At: now, Subject: subject, Lead: &l}
			it := &item{alert: al, dest: d, row: row, decidedAt: a.clock.Now(), due: a.clock.Now(), done: release}
			if s := set.Sites[site]; s != nil {
				it.quiet, it.loc = s.Quiet, s.Location
			}
			a.queue(d).push(it)
		}
	}
	return nil
}

func (a *Alerter) readHotLeads(ctx context.Context, site string, r *rules.Rule, now time.Time) ([]notify.Lead, error) {
	vq, pq, rq := hotLeadSQL(site, now.Add(-r.Window), now)
	type visitor struct {
		customer  string
		inquiries uint64
	}
	vis := map[string]*visitor{}
	rows, err := a.conn.Query(ctx, vq)
	if err != nil {
		return nil, fmt.Errorf("cannot read visitors: %w", err)
	}
	for rows.Next() {
		var anon, uid string
		var inq, orders uint64
		if err := rows.Scan(&anon, &uid, &inq, &orders); err != nil {
			rows.Close()
			return nil, err
		}
		vis[anon] = &visitor{customer: uid, inquiries: inq}
	}
	rows.Close()
	views := map[string][]notify.LeadProduct{}
	rows, err = a.conn.Query(ctx, pq)
	if err != nil {
		return nil, fmt.Errorf("cannot read product views: %w", err)
	}
	for rows.Next() {
		var anon, pid string
		var n uint64
		if err := rows.Scan(&anon, &pid, &n); err != nil {
			rows.Close()
			return nil, err
		}
		views[anon] = append(views[anon], notify.LeadProduct{ProductID: pid, Views: int(n)})
	}
	rows.Close()
	returning := map[string]bool{}
	rows, err = a.conn.Query(ctx, rq)
	if err != nil {
		return nil, fmt.Errorf("cannot read returning visitors: %w", err)
	}
	for rows.Next() {
		var anon string
		if err := rows.Scan(&anon); err != nil {
			rows.Close()
			return nil, err
		}
		returning[anon] = true
	}
	rows.Close()
	var out []notify.Lead
	for anon, v := range vis {
		if v.customer == "" && !returning[anon] {
			continue
		}
		ps := views[anon]
		hot := v.inquiries > 0
		for _, p := range ps {
			hot = hot || p.Views >= r.MinViews
		}
		if !hot {
			continue
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Views > ps[j].Views })
		out = append(out, notify.Lead{AnonymousID: anon, CustomerID: v.customer, Returning: returning[anon],
			Inquiries: int(v.inquiries), Products: ps})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AnonymousID < out[j].AnonymousID })
	return out, nil
}
