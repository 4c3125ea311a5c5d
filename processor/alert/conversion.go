package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shoptrail/shoptrail/processor/alert/drop"
	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// Conversion drops are checked every DropInterval over the hour before
// now, against the same hour of the rule's baseline weeks, from the events
// and sessions tables (bots left out, events counted by distinct message
// id so a redelivered batch changes nothing). A step that dropped is
// alerted once per hour bucket (the alert id holds site, rule, step and
// hour), and then not again for the rule's cooldown (6h by default), which
// is kept like a customer's.

// runDrops checks the conversion_drop rules every interval until ctx ends.
func (a *Alerter) runDrops(ctx context.Context, every time.Duration) {
	for {
		if err := a.checkDrops(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("cannot check conversion drops; trying again later", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(every):
		}
	}
}

func (a *Alerter) checkDrops(ctx context.Context) error {
	set := a.rules.Load()
	now := a.clock.Now().Truncate(time.Minute)
	for id, site := range set.Sites {
		for _, r := range site.Rules {
			if r.Type != rules.TypeConversionDrop && r.Type != rules.TypeHotLead {
				continue
			}
			sites := []string{id}
			if id == "*" {
				var err error
				if sites, err = a.activeSites(ctx, now); err != nil {
					return err
				}
			}
			for _, s := range sites {
				check := a.checkDrop
				if r.Type == rules.TypeHotLead {
					check = a.checkHotLeads
				}
				if err := check(ctx, set, s, r, now); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (a *Alerter) activeSites(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := a.conn.Query(ctx, activeSitesSQL(now))
	if err != nil {
		return nil, fmt.Errorf("cannot list active sites: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (a *Alerter) checkDrop(ctx context.Context, set *rules.Set, site string, r *rules.Rule, now time.Time) error {
	wins, err := ReadWindows(ctx, a.conn, site, now, r.Drop.Weeks, r.Drop.Window)
	if err != nil {
		return err
	}
	cfg := drop.Config{MinVolume: r.Drop.MinVolume, Threshold: r.Drop.Threshold, MinDrop: r.Drop.MinDrop,
		PriceRise: r.Drop.PriceRise, ShareChange: r.Drop.ShareChange}
	for _, f := range drop.Detect(wins[0], wins[1:], cfg) {
		f.Hours = int(r.Drop.Window.Hours())
		subject := "step:" + f.Step
		key := rules.CooldownKey(site, r.Name, subject)
		bucket := now.Truncate(time.Hour).Format(time.RFC3339)
		signalID := "drop|" + site + "|" + f.Step + "|" + bucket
		a.m.decided.WithLabelValues(r.Name).Inc()
		if a.cd.active(key, now, hash64(signalID)) {
			a.m.suppressed.WithLabelValues(reasonCooldown).Inc()
			continue
		}
		dests := r.To
		var ids []string
		for _, dn := range dests {
			ids = append(ids, rules.AlertID(signalID, r.Name, dn))
		}
		done, err := a.runLookup(ctx, doneSQL(ids))
		if err != nil {
			return fmt.Errorf("cannot read sent drop alerts: %w", err)
		}
		until := now.Add(r.Cooldown)
		a.cd.set(key, until, hash64(signalID))
		for i, dn := range dests {
			d := set.Destinations[dn]
			if d == nil || done[ids[i]] || !a.claim(ids[i]) {
				continue
			}
			f := f
			al := &notify.Alert{ID: ids[i], Type: notify.TypeConversion, Rule: r.Name, Site: site, At: now, Subject: subject, Drop: &f}
			row := Row{AlertID: ids[i], SignalID: signalID, SignalType: "conversion_drop", Site: site, Rule: r.Name,
				Subject: subject, Destination: dn, SignalAt: now, CooldownUntil: until, Alerter: a.cfg.ID}
			id := ids[i]
			it := &item{alert: al, dest: d, row: row, decidedAt: a.clock.Now(), due: a.clock.Now(),
				done: func() { a.imu.Lock(); delete(a.inflight, id); a.imu.Unlock() }}
			if s := set.Sites[site]; s != nil {
				it.quiet, it.loc = s.Quiet, s.Location
			}
			a.queue(d).push(it)
		}
	}
	return nil
}

// ReadWindows reads, for a site, the span before now and the same span of
// each of the previous weeks (index 0 is now's, k is k weeks before).
func ReadWindows(ctx context.Context, conn driver.Conn, site string, now time.Time, weeks int, span time.Duration) ([]drop.Window, error) {
	wins := make([]drop.Window, weeks+1)
	for k := range wins {
		wins[k] = drop.Window{Products: map[string]drop.Product{}, Sources: map[string]float64{}}
	}
	funnelQ, productsQ, sourcesQ := windowsSQL(site, now, weeks, span)
	steps := map[string]int{"Product Viewed": 0, "Product Added": 1, "Checkout Started": 2, "Order Completed": 3}
	rows, err := conn.Query(ctx, funnelQ)
	if err != nil {
		return nil, fmt.Errorf("cannot read funnel counts: %w", err)
	}
	for rows.Next() {
		var w int8
		var ev string
		var n uint64
		if err := rows.Scan(&w, &ev, &n); err != nil {
			rows.Close()
			return nil, err
		}
		if w >= 0 {
			wins[w].Steps[steps[ev]] = float64(n)
		}
	}
	rows.Close()
	rows, err = conn.Query(ctx, productsQ)
	if err != nil {
		return nil, fmt.Errorf("cannot read product counts: %w", err)
	}
	for rows.Next() {
		var w int8
		var id string
		var views, adds uint64
		var price float64
		if err := rows.Scan(&w, &id, &views, &adds, &price); err != nil {
			rows.Close()
			return nil, err
		}
		if w >= 0 {
			wins[w].Products[id] = drop.Product{Views: float64(views), Adds: float64(adds), Price: price}
		}
	}
	rows.Close()
	rows, err = conn.Query(ctx, sourcesQ)
	if err != nil {
		return nil, fmt.Errorf("cannot read source counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w int8
		var src string
		var n uint64
		if err := rows.Scan(&w, &src, &n); err != nil {
			return nil, err
		}
		if src == "" {
			src = "(direct)"
		}
		if w >= 0 {
			wins[w].Sources[src] += float64(n)
		}
	}
	return wins, rows.Err()
}
