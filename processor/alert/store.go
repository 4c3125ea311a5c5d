package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// loadState reads what earlier runs and other alerters left in
// alert_deliveries: cooldowns still running and the sends inside each
// rate-limited destination's window.
func (a *Alerter) loadState(ctx context.Context) error {
	now := a.clock.Now()
	rows, err := a.conn.Query(ctx, `SELECT site, rule, subject, signal_id, toUInt32(cooldown_until) FROM alert_deliveries
WHERE final = 1 AND cooldown_until > toDateTime(`+fmt.Sprint(now.Add(-time.Hour).Unix())+`)`)
	if err != nil {
		return fmt.Errorf("cannot load cooldowns from alert_deliveries: %w", err)
	}
	for rows.Next() {
		var site, rule, subject, sigID string
		var until uint32
		if err := rows.Scan(&site, &rule, &subject, &sigID, &until); err != nil {
			rows.Close()
			return fmt.Errorf("cannot load cooldowns: %w", err)
		}
		a.cd.set(rules.CooldownKey(site, rule, subject), time.Unix(int64(until), 0), hash64(sigID))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot load cooldowns: %w", err)
	}
	a.m.cooldowns.Set(float64(a.cd.len()))
	own, others, err := a.sends(ctx, true)
	if err != nil {
		return err
	}
	a.qmu.Lock()
	for name, d := range a.rules.Load().Destinations {
		if d.Rate > 0 {
			l := a.limiterLocked(d)
			l.addOwn(own[name])
			l.setOthers(others[name])
		}
	}
	a.qmu.Unlock()
	a.log.Info("state loaded", "cooldowns", a.cd.len())
	return nil
}

// sends reads the sends to rate-limited destinations within their windows:
// this alerter's (when withOwn) and the others'.
func (a *Alerter) sends(ctx context.Context, withOwn bool) (own, others map[string][]time.Time, err error) {
	var window time.Duration
	var names []string
	for name, d := range a.rules.Load().Destinations {
		if d.Rate > 0 {
			names = append(names, name)
			window = max(window, d.Per)
		}
	}
	own, others = map[string][]time.Time{}, map[string][]time.Time{}
	if len(names) == 0 {
		return own, others, nil
	}
	// DateTime has whole seconds: one second more is read, never less.
	from := a.clock.Now().Add(-window - time.Second).Unix()
	q := `SELECT destination, alerter, toUInt32(recorded_at) FROM alert_deliveries
WHERE status = 'sent' AND recorded_at >= toDateTime(` + fmt.Sprint(from) + `) AND destination IN (` + quoteList(names) + `)`
	if !withOwn {
		q += ` AND alerter != ` + quoteList([]string{a.cfg.ID})
	}
	rows, err := a.conn.Query(ctx, q)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read recent sends from alert_deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dest, alerter string
		var at uint32
		if err := rows.Scan(&dest, &alerter, &at); err != nil {
			return nil, nil, fmt.Errorf("cannot read recent sends: %w", err)
		}
		if alerter == a.cfg.ID {
			own[dest] = append(own[dest], time.Unix(int64(at), 0))
		} else {
			others[dest] = append(others[dest], time.Unix(int64(at), 0))
		}
	}
	return own, others, rows.Err()
}

// refreshState reads the other alerters' sends every StateRefresh (shared
// rate limits) and drops expired cooldowns every minute.
func (a *Alerter) refreshState(ctx context.Context) {
	t := time.NewTicker(a.cfg.StateRefresh)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, others, err := a.sends(ctx, false)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("cannot refresh the shared rate limits", "err", err)
			}
			continue
		}
		a.qmu.Lock()
		for name, d := range a.rules.Load().Destinations {
			if d.Rate > 0 {
				a.limiterLocked(d).setOthers(others[name])
			}
		}
		a.qmu.Unlock()
		if time.Since(lastSweep) > time.Minute {
			lastSweep = time.Now()
			// Cooldowns are in event time; a day of slack keeps those a
			// lagging partition may still need.
			a.m.cooldowns.Set(float64(a.cd.sweep(a.clock.Now().Add(-24 * time.Hour))))
		}
	}
}
