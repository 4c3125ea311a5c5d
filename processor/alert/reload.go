package alert

import (
	"context"
	"crypto/sha256"
	"os"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// watchRules reloads the rules file on Options.Reload (SIGHUP) and when
// its content changes (checked every ReloadInterval: polling the content
// also sees a Kubernetes ConfigMap's symlink swap). An invalid file is
// refused with the reason in the log; the rules in force stay.
func (a *Alerter) watchRules(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReloadInterval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-a.opts.Reload:
			forced = true
		case <-t.C:
		}
		a.reload(forced)
	}
}

// reload loads the rules file if it changed (or forced) and reports whether
// new rules are in force.
func (a *Alerter) reload(forced bool) bool {
	data, err := os.ReadFile(a.cfg.RulesFile)
	if err != nil {
		a.m.reloads.WithLabelValues("invalid").Inc()
		a.log.Error("cannot read the rules file; the previous rules stay in force", "file", a.cfg.RulesFile, "err", err)
		return false
	}
	h := sha256.Sum256(data)
	if h == a.hash && !forced {
		return false
	}
	a.hash = h
	set, err := rules.Parse(data, a.opts.Env)
	if err != nil {
		a.m.reloads.WithLabelValues("invalid").Inc()
		a.log.Error("rules file refused; the previous rules stay in force", "file", a.cfg.RulesFile, "err", err)
		return false
	}
	a.rules.Store(set)
	a.m.reloads.WithLabelValues("ok").Inc()
	a.log.Info("rules reloaded", "file", a.cfg.RulesFile, "sites", len(set.Sites), "destinations", len(set.Destinations))
	return true
}
