package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/progress"

	"github.com/shoptrail/shoptrail/simulate"
)

// runSimulate sends simulated shop traffic through a collector: weeks of
// history as fast as the collector takes it, or live at a rate.
func runSimulate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	var lc logConfig
	var cfg simulate.Config
	var snd simulate.Sender
	fs.StringVar(&snd.URL, "collector", "http://127.0.0.1:8080", "collector base URL")
	fs.StringVar(&snd.WriteKey, "write-key", "dev", "write key of the site to send as")
	fs.IntVar(&snd.Batch, "batch", 500, "messages per request (at most 500)")
	fs.IntVar(&snd.Parallel, "parallel", 1, "history: requests in flight at most (1: one at a time, in order; more did not help on two cores)")
	fs.DurationVar(&snd.MaxSkew, "max-skew", 2*time.Minute, "history: event time the requests in flight may span (keep it under the processor's allowed lateness)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed: the same seed and flags send the same events")
	fs.IntVar(&cfg.DailyVisitors, "visitors", 2000, "visitors on an average weekday (weekends and the season move it; bots come on top)")
	fs.IntVar(&cfg.Products, "products", 500, "products in the catalogue")
	fs.Float64Var(&cfg.BotShare, "bot-share", 0.05, "share of sessions made by crawlers")
	sources := fs.String("sources", "", "mix of new visitors' sources as name=weight,... (default "+defaultMix()+")")
	host := fs.String("host", "shop.example", "the shop's host name in page URLs")
	days := fs.Int("days", 28, "history: days to simulate, ending yesterday unless -start is given")
	start := fs.String("start", "", "history: first day, YYYY-MM-DD (UTC); default -days before today")
	live := fs.Bool("live", false, "run live: events stamped now, sent at -rate, until -duration or Ctrl-C")
	rate := fs.Float64("rate", 50, "live: events per second")
	duration := fs.Duration("duration", 0, "live: how long to run (0: until stopped)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	lc.RegisterFlags(fs, "text")
	if _, err := parse(fs, &lc, args); err != nil {
		return err
	}
	if *sources != "" {
		mix, err := parseMix(*sources)
		if err != nil {
			return err
		}
		cfg.Sources = mix
	}
	first := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -*days)
	if *start != "" {
		t, err := time.Parse(time.DateOnly, *start)
		if err != nil {
			return fmt.Errorf("-start: %w", err)
		}
		first = t
	}
	if *live {
		first = time.Now().UTC()
	}
	shop, err := simulate.NewShop(cfg, *host, first)
	if err != nil {
		return err
	}
	pw := progress.NewWriter()
	pw.SetOutputWriter(os.Stderr)
	pw.SetUpdateFrequency(250 * time.Millisecond)
	pw.SetAutoStop(false)
	pw.Style().Visibility.ETA = true
	pw.Style().Visibility.Speed = true
	if !*quiet {
		go pw.Render()
	}
	stop := func() {
		if !*quiet {
			pw.Stop()
			for pw.IsRenderInProgress() {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	began := time.Now()
	if *live {
		err = runLive(ctx, shop, &snd, pw, *rate, *duration)
	} else {
		if *days <= 0 {
			stop()
			return fmt.Errorf("-days must be positive")
		}
		tr := &progress.Tracker{Message: "days", Total: int64(*days), Units: progress.UnitsDefault}
		pw.AppendTracker(tr)
		// The next day is made while this one is sent.
		next := make(chan []simulate.Message, 1)
		genCtx, stopGen := context.WithCancel(ctx)
		go func() {
			defer close(next)
			for range *days {
				select {
				case next <- shop.NextDay():
				case <-genCtx.Done():
					return
				}
			}
		}()
		var carry []simulate.Message // the visits running past midnight
		for d := 0; d < *days && err == nil; d++ {
			msgs, ok := <-next
			if !ok {
				err = ctx.Err()
				break
			}
			if d < *days-1 {
				msgs, carry = simulate.CarryOver(carry, msgs, first.AddDate(0, 0, d+1))
			} else {
				msgs, _ = simulate.CarryOver(carry, msgs, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)) // everything
			}
			err = snd.Send(ctx, msgs)
			tr.Increment(1)
			tr.UpdateMessage(fmt.Sprintf("%s, %d events", first.AddDate(0, 0, d).Format(time.DateOnly), snd.Sent))
		}
		stopGen()
		if err != nil {
			tr.MarkAsErrored()
		} else {
			tr.MarkAsDone()
		}
	}
	stop()
	el := time.Since(began)
	fmt.Fprintf(os.Stderr, "sent %d events in %s (%.0f events/s) to %s\n", snd.Sent, el.Round(time.Millisecond), float64(snd.Sent)/el.Seconds(), snd.URL)
	return err
}

// runLive sends the shop's days as they come, each event stamped with the
// time it is sent, at rate events per second.
func runLive(ctx context.Context, shop *simulate.Shop, snd *simulate.Sender, pw progress.Writer, rate float64, duration time.Duration) error {
	if rate <= 0 {
		return fmt.Errorf("-rate must be positive")
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	tr := &progress.Tracker{Message: "events", Units: progress.UnitsDefault}
	if duration > 0 {
		tr.Total = int64(rate * duration.Seconds())
	}
	pw.AppendTracker(tr)
	chunk := max(1, min(500, int(rate/10)))
	began := time.Now()
	var sent int64
	for ctx.Err() == nil {
		msgs := shop.NextDay()
		for i := 0; i < len(msgs) && ctx.Err() == nil; i += chunk {
			part := msgs[i:min(i+chunk, len(msgs))]
			now := time.Now().UTC()
			for k := range part {
				part[k].Timestamp = now
			}
			if err := snd.Send(ctx, part); err != nil {
				if ctx.Err() != nil {
					break
				}
				tr.MarkAsErrored()
				return err
			}
			sent += int64(len(part))
			tr.SetValue(sent)
			// Keep to the rate: the next chunk is due when sent/rate seconds have passed.
			due := began.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(due)):
			}
		}
	}
	tr.MarkAsDone()
	return nil
}

func defaultMix() string {
	var parts []string
	for _, n := range simulate.SourceNames {
		parts = append(parts, n+"="+strconv.FormatFloat(simulate.DefaultSources[n], 'f', -1, 64))
	}
	return strings.Join(parts, ",")
}

func parseMix(s string) (map[string]float64, error) {
	mix := map[string]float64{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("-sources: %q is not name=weight", kv)
		}
		w, err := strconv.ParseFloat(v, 64)
		if err != nil || w < 0 {
			return nil, fmt.Errorf("-sources: weight of %s: %q is not a non-negative number", k, v)
		}
		mix[k] = w
	}
	return mix, nil
}
