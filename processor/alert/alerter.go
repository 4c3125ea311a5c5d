package alert

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
	"github.com/shoptrail/shoptrail/processor/alert/safehttp"
)

// Options are the alerter's collaborators; zero values are fine.
type Options struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: a private registry
	Clock      Clock                 // nil: the wall clock
	// Reload receives a value for every SIGHUP (main wires it).
	Reload <-chan struct{}
	// Env looks up the rules' secrets; nil is os.LookupEnv.
	Env rules.Env
	// TestHook is called at named points ("decided": a batch's alerts are
	// queued, none delivered) so crash tests can kill the process there.
	TestHook func(point string)
}

// Alerter consumes signals, decides alerts and delivers them.
type Alerter struct {
	cfg    Config
	conn   driver.Conn
	log    *slog.Logger
	clock  Clock
	m      *metrics
	opts   Options
	client *safehttp.Client
	rec    *recorder
	cd     *cooldowns
	track  *tracker
	rules  atomic.Pointer[rules.Set]
	hash   [32]byte // of the rules file's content
	ready  atomic.Bool

	rl *rateLog

	qmu    sync.Mutex
	queues map[string]*destQueue
	qctx   context.Context
	qwg    sync.WaitGroup

	imu      sync.Mutex
	inflight map[string]struct{}
	pending  atomic.Int64
}

// New checks the config, loads the rules (an invalid file is an error)
// and returns an alerter ready to Run.
func New(cfg Config, conn driver.Conn, opts Options) (*Alerter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = WallClock
	}
	if opts.Env == nil {
		opts.Env = os.LookupEnv
	}
	a := &Alerter{cfg: cfg, conn: conn, opts: opts, log: opts.Logger.With("component", "alerter"), clock: opts.Clock,
		m: newMetrics(opts.Registerer), cd: newCooldowns(), track: newTracker(),
		// Several destinations may share a host (hooks.slack.com): room
		// for four destinations' senders there before connections churn.
		client: safehttp.New(safehttp.Options{AllowLoopback: cfg.AllowLoopback, Timeout: cfg.Timeout, IdlePerHost: 4 * cfg.Concurrency}),
		queues: map[string]*destQueue{}, inflight: map[string]struct{}{}}
	a.rl = newRateLog(a)
	a.rec = newRecorder(conn, a.log, a.m, cfg.RecordInterval)
	data, err := os.ReadFile(cfg.RulesFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules file: %w", err)
	}
	set, err := rules.Parse(data, opts.Env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.RulesFile, err)
	}
	a.rules.Store(set)
	a.hash = sha256.Sum256(data)
	return a, nil
}

// Rules returns the rules in force.
func (a *Alerter) Rules() *rules.Set { return a.rules.Load() }

// Handler serves /metrics (from g), /healthz and /readyz.
func (a *Alerter) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	if g != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready: loading state from ClickHouse", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Run consumes until ctx is done. Shutdown: stop reading signals, stop the
// senders (alerts not yet delivered stay uncommitted and are decided again
// after a restart), record what was done, commit its offsets, leave the
// group.
func (a *Alerter) Run(ctx context.Context) error {
	if err := a.loadState(ctx); err != nil {
		return err
	}
	a.ready.Store(true)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: a.cfg.Brokers, GroupID: a.cfg.GroupID, Topic: a.cfg.Topic,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 4 * a.cfg.BatchSize,
		StartOffset: kafka.FirstOffset, CommitInterval: 0, // commits are explicit, after the outcomes are stored
		HeartbeatInterval: max(a.cfg.SessionTimeout/5, 50*time.Millisecond), SessionTimeout: a.cfg.SessionTimeout,
		RebalanceTimeout: a.cfg.SessionTimeout,
	})
	qctx, stopQueues := context.WithCancel(context.WithoutCancel(ctx))
	a.qmu.Lock()
	a.qctx = qctx
	a.qmu.Unlock()
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	recDone := make(chan struct{})
	go func() { defer close(recDone); a.rec.run(recCtx) }()
	commitCtx, stopCommit := context.WithCancel(context.WithoutCancel(ctx))
	commitDone := make(chan struct{})
	go func() { defer close(commitDone); a.committer(commitCtx, r) }()
	bg.Add(4)
	go func() { defer bg.Done(); a.watchRules(ctx) }()
	go func() { defer bg.Done(); a.runDrops(ctx, a.cfg.DropInterval) }()
	go func() { defer bg.Done(); a.runDigests(ctx, time.Minute) }()
	go func() { defer bg.Done(); a.sweepCooldowns(ctx) }()
	rlCtx, stopRL := context.WithCancel(context.WithoutCancel(ctx))
	rlDone := make(chan struct{})
	go func() { defer close(rlDone); a.rl.run(rlCtx) }()

	err := a.consume(ctx, r)

	// Order matters: senders stop first (nothing new gets done), the
	// recorder stores what was done, then the last commit, then the group
	// is left.
	stopQueues()
	a.qwg.Wait()
	stopRL()
	<-rlDone
	stopRec()
	<-recDone
	stopCommit()
	<-commitDone
	bg.Wait()
	a.client.CloseIdle()
	if cerr := r.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("cannot leave the consumer group: %w", cerr)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// consume reads and decides signals. Reading and the ClickHouse look-up of
// earlier outcomes are pipelined (up to three batches ahead); deciding
// stays in order.
func (a *Alerter) consume(ctx context.Context, r *kafka.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type prepared struct {
		items []decided
		done  map[string]bool
		err   error
		ready chan struct{}
	}
	ahead := make(chan *prepared, 3)
	go func() {
		defer close(ahead)
		for {
			// Back-pressure: a dead destination fills its queue up to
			// MaxPending; then reading waits.
			for a.pending.Load() >= int64(a.cfg.MaxPending) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			batch, err := a.fetch(ctx, r)
			p := &prepared{ready: make(chan struct{})}
			if err != nil {
				p.err = err
				close(p.ready)
			} else {
				go func() {
					defer close(p.ready)
					p.items, p.done, p.err = a.prepare(ctx, batch)
				}()
			}
			select {
			case ahead <- p:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for p := range ahead {
		<-p.ready
		if p.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("cannot read signals from %s: %w", a.cfg.Topic, p.err)
		}
		for i := range p.items {
			if !a.track.fresh(p.items[i].msg.Partition, p.items[i].msg.Offset) {
				continue // read again after a rebalance while still in flight here
			}
			a.decideOne(&p.items[i], p.done)
		}
		if a.opts.TestHook != nil {
			a.opts.TestHook("decided")
		}
	}
	return ctx.Err()
}

// fetch waits for one message, then takes what else is there at once.
func (a *Alerter) fetch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	// What else arrives within 10ms joins the batch (one timer per batch).
	fctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	for len(batch) < a.cfg.BatchSize {
		m, err := r.FetchMessage(fctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// decided is one signal of a batch and what its rules say.
type decided struct {
	msg kafka.Message
	sig *shoptrail.Signal
	ds  []rules.Decision
	bad error
}

// prepare decodes a batch, evaluates the rules and looks up earlier
// outcomes; it changes nothing but the cooldowns read from ClickHouse.
func (a *Alerter) prepare(ctx context.Context, batch []kafka.Message) ([]decided, map[string]bool, error) {
	set := a.rules.Load()
	items := make([]decided, 0, len(batch))
	var ids, subjects []string
	minAt := time.Time{}
	var p fastjson.Parser
	for _, m := range batch {
		d := decided{msg: m}
		var sig shoptrail.Signal
		if err := decodeSignal(&p, m.Value, &sig); err != nil {
			d.bad = fmt.Errorf("cannot decode signal: %w", err)
		} else if sig.V > shoptrail.SignalVersion {
			d.bad = fmt.Errorf("signal version %d is newer than this alerter's %d", sig.V, shoptrail.SignalVersion)
		} else if sig.ID == "" || sig.Site == "" {
			d.bad = errors.New("signal without id or site")
		}
		if d.bad == nil {
			d.sig = &sig
			d.ds = set.Evaluate(&sig)
			for _, dc := range d.ds {
				ids = append(ids, dc.AlertID)
				subjects = append(subjects, dc.Subject)
			}
			if len(d.ds) > 0 && (minAt.IsZero() || sig.At.Before(minAt)) {
				minAt = sig.At
			}
		}
		items = append(items, d)
	}
	var done map[string]bool
	if len(ids) > 0 {
		var err error
		done, err = a.lookup(ctx, ids, subjects, minAt.Add(-a.maxCooldown(set)-time.Hour))
		if err != nil {
			return nil, nil, err
		}
	}
	return items, done, nil
}

// lookupChunk bounds the ids and subjects of one look-up query, in bytes:
// ClickHouse refuses a query over max_query_size (256 KiB by default),
// and a batch of 1,000 signals with several rules and destinations each
// would exceed it every time (escaping may double the bytes).
const lookupChunk = 96 << 10

// lookup reads earlier final outcomes of these alerts (a replay after a
// crash or a rebalance: already done, not sent again) and the cooldowns of
// these subjects that other alerters or earlier runs set (subjects[i] is
// ids[i]'s), in queries of at most lookupChunk bytes of them. It retries
// until ClickHouse answers or ctx ends: deciding without it could alert
// twice.
func (a *Alerter) lookup(ctx context.Context, ids, subjects []string, since time.Time) (map[string]bool, error) {
	done := map[string]bool{}
	for len(ids) > 0 {
		n, size := 0, 0
		for n < len(ids) && (n == 0 || size+len(ids[n])+len(subjects[n])+6 <= lookupChunk) {
			size += len(ids[n]) + len(subjects[n]) + 6 // quotes and commas
			n++
		}
		part, err := a.lookupPart(ctx, ids[:n], subjects[:n], since)
		if err != nil {
			return nil, err
		}
		for id := range part {
			done[id] = true
		}
		ids, subjects = ids[n:], subjects[n:]
	}
	return done, nil
}

func (a *Alerter) lookupPart(ctx context.Context, ids, subjects []string, since time.Time) (map[string]bool, error) {
	q := lookupSQL(ids, subjects, since)
	wait := 100 * time.Millisecond
	for {
		done, err := a.runLookup(ctx, q)
		if err == nil {
			return done, nil
		}
		a.log.Warn("cannot read earlier alert outcomes; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func (a *Alerter) runLookup(ctx context.Context, q string) (map[string]bool, error) {
	rows, err := a.conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var id, sigID, site, rule, subject string
		var until uint32
		if err := rows.Scan(&id, &sigID, &site, &rule, &subject, &until); err != nil {
			return nil, err
		}
		done[id] = true
		if until > 0 {
			a.cd.set(rules.CooldownKey(site, rule, subject), time.Unix(int64(until), 0), hash64(sigID))
		}
	}
	return done, rows.Err()
}

// sqlQuote escapes a string for a ClickHouse string literal. One Replacer
// for all: building one is most of its cost (it was built per string, 4 % of
// the alerter's CPU).
var sqlQuote = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// quoteList writes ss, without repeats, as quoted SQL string literals
// separated by commas.
func quoteList(ss []string) string {
	var b strings.Builder
	seen := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; ok {
			continue
		}
		seen[s] = struct{}{}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\'')
		sqlQuote.WriteString(&b, s)
		b.WriteByte('\'')
	}
	return b.String()
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func (a *Alerter) maxCooldown(set *rules.Set) time.Duration {
	var m time.Duration
	for _, s := range set.Sites {
		for _, r := range s.Rules {
			m = max(m, r.Cooldown)
		}
	}
	return m
}

// decideOne applies duplicates, cooldown, hold-out and digests to one
// signal's decisions, queues its alerts and registers its offset with the
// number of outcomes it waits for.
func (a *Alerter) decideOne(d *decided, done map[string]bool) {
	m, now := d.msg, a.clock.Now()
	if d.bad != nil {
		a.m.signals.WithLabelValues("invalid").Inc()
		a.log.Warn("signal refused; kept in alert_deliveries as invalid_signal", "partition", m.Partition, "offset", m.Offset, "err", d.bad)
		a.track.add(m, 1)
		a.rec.add(Row{RecordedAt: now, SignalID: string(m.Key), Status: "invalid_signal", Final: true,
			Answer: truncate(d.bad.Error(), 256), Payload: truncate(string(m.Value), 64<<10), Alerter: a.cfg.ID,
			done: a.doneFunc(m, "")})
		return
	}
	sig := d.sig
	if sig.Type == shoptrail.SignalCartRecovered && sig.Cart != nil {
		a.m.signals.WithLabelValues("recovery").Inc()
		a.track.add(m, 1)
		a.rec.addRecovery(Recovery{SignalID: sig.ID, Site: sig.Site, Subject: sig.Key(), AbandonmentID: sig.Cart.AbandonmentID,
			AbandonedAt: sig.Cart.AbandonedAt, RecoveredAt: sig.Cart.RecoveredAt, OrderID: sig.Cart.RecoveredOrderID,
			Value: sig.Cart.RecoveredValue, Currency: sig.Cart.Currency, done: a.doneFunc(m, "")})
		return
	}
	if len(d.ds) == 0 {
		a.m.signals.WithLabelValues("unmatched").Inc()
		a.track.add(m, 0)
		return
	}
	a.m.signals.WithLabelValues("matched").Inc()
	type action struct {
		row  Row
		item *item
	}
	var acts []action
	sigHash := hash64(sig.ID)
	for _, dc := range d.ds {
		a.m.decided.WithLabelValues(dc.Rule.Name).Inc()
		if done[dc.AlertID] || !a.claim(dc.AlertID) {
			a.m.suppressed.WithLabelValues(reasonDuplicate).Inc()
			continue
		}
		row := Row{RecordedAt: now, AlertID: dc.AlertID, SignalID: sig.ID, SignalType: sig.Type, Site: sig.Site,
			Rule: dc.Rule.Name, Subject: dc.Subject, Destination: dc.Destination.Name, HeldOut: dc.HeldOut,
			FollowUp: dc.FollowUp, SignalAt: sig.At, Alerter: a.cfg.ID, Final: true}
		if sig.Cart != nil {
			row.AbandonmentID = sig.Cart.AbandonmentID
		}
		key := rules.CooldownKey(sig.Site, dc.Rule.Name, dc.Subject)
		if a.cd.active(key, sig.At, sigHash) {
			row.Status = StatusCooldown
			a.m.suppressed.WithLabelValues(reasonCooldown).Inc()
			acts = append(acts, action{row: row})
			continue
		}
		if dc.Rule.Cooldown > 0 {
			row.CooldownUntil = sig.At.Add(dc.Rule.Cooldown)
			a.cd.set(key, row.CooldownUntil, sigHash)
		}
		switch {
		case dc.HeldOut:
			row.Status = StatusHeldOut
			a.m.suppressed.WithLabelValues(reasonHoldOut).Inc()
			acts = append(acts, action{row: row})
		case dc.Rule.Digest != nil:
			row.Status = StatusDigestPending
			row.Payload = digestItemJSON(sig)
			acts = append(acts, action{row: row})
		default:
			site := a.rules.Load().Sites[sig.Site]
			if site == nil {
				site = a.rules.Load().Sites["*"]
			}
			it := &item{alert: notify.FromSignal(&dc, sig), dest: dc.Destination, row: row, decidedAt: now, due: now}
			if site != nil {
				it.quiet, it.loc = site.Quiet, site.Location
			}
			acts = append(acts, action{row: row, item: it})
		}
	}
	a.track.add(m, len(acts))
	for _, act := range acts {
		a.pending.Add(1)
		a.m.pending.Inc()
		if act.item == nil {
			act.row.done = a.doneFunc(m, act.row.AlertID)
			a.rec.add(act.row)
			continue
		}
		act.item.done = a.doneFunc(m, act.item.row.AlertID)
		act.item.row.Final = false
		a.queue(act.item.dest).push(act.item)
	}
}

// claim marks an alert in flight; false if it already is.
func (a *Alerter) claim(id string) bool {
	a.imu.Lock()
	defer a.imu.Unlock()
	if _, ok := a.inflight[id]; ok {
		return false
	}
	a.inflight[id] = struct{}{}
	return true
}

// doneFunc is called once an outcome of m is stored.
func (a *Alerter) doneFunc(m kafka.Message, alertID string) func() {
	return func() {
		if alertID != "" {
			a.imu.Lock()
			delete(a.inflight, alertID)
			a.imu.Unlock()
			a.pending.Add(-1)
			a.m.pending.Dec()
		}
		a.track.done(m.Partition, m.Offset)
	}
}

// queue returns the destination's queue, starting its senders.
func (a *Alerter) queue(d *rules.Destination) *destQueue {
	a.qmu.Lock()
	defer a.qmu.Unlock()
	q := a.queues[d.Name]
	if q == nil {
		q = &destQueue{name: d.Name, a: a, wake: make(chan struct{}, a.cfg.Concurrency)}
		a.queues[d.Name] = q
		for range a.cfg.Concurrency {
			a.qwg.Add(1)
			go func() { defer a.qwg.Done(); q.sender(a.qctx) }()
		}
	}
	return q
}

func digestItemJSON(sig *shoptrail.Signal) string {
	it := notify.DigestItem{Subject: sig.Key(), At: sig.At}
	if c := sig.Customer; c != nil {
		it.Name, it.Company, it.Email, it.Phone, it.Tier = c.Name, c.Company, c.Email, c.Phone, c.Tier
		it.OrderCount, it.NetRevenue, it.Currency, it.Channel = c.OrderCount, c.NetRevenue, c.Currency, c.FirstChannel
	}
	if tr := sig.Transition; tr != nil {
		it.From, it.To = tr.From, tr.To
		if tr.Kind == "tier" {
			it.Kind = tr.Kind
		}
	}
	b, _ := json.Marshal(it)
	return string(b)
}
