package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// loadState reads the cooldowns still running that earlier runs and other
// alerters left in alert_deliveries.
func (a *Alerter) loadState(ctx context.Context) error {
	now := a.clock.Now()
	rows, err := a.conn.Query(ctx, cooldownsSQL(now.Add(-time.Hour)))
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
	a.log.Info("state loaded", "cooldowns", a.cd.len())
	return nil
}

// sweepCooldowns drops expired cooldowns every minute.
func (a *Alerter) sweepCooldowns(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Cooldowns are in event time; a day of slack keeps those a lagging
		// partition may still need.
		a.m.cooldowns.Set(float64(a.cd.sweep(a.clock.Now().Add(-24 * time.Hour))))
	}
}
