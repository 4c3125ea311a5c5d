package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shoptrail/shoptrail/collector/loadgen"
	"github.com/shoptrail/shoptrail/internal/devstack"
)

// runLoadgen sends load to a collector and reports events/s, latency and
// CPU per event. With -stack it first starts its own broker and collector
// (child processes, on free loopback ports) and stops them afterwards;
// -suite runs the benchmark set of `make bench`.
func runLoadgen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var cfg loadgen.Config
	var lc logConfig
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "collector base URL (loopback only)")
	fs.StringVar(&cfg.WriteKey, "write-key", "dev", "write key")
	fs.IntVar(&cfg.Batch, "batch", 1, "events per request: 1 posts /v1/track, more /v1/batch")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections, one request in flight each")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target events per second (0: as fast as answered)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time of each run (at most 10m)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured time before each run")
	stack := fs.Bool("stack", false, "start a broker and a collector (child processes) on free loopback ports for the run")
	suite := fs.Bool("suite", false, "run the benchmark set: single events and 20-event batches at full rate, then at half the targets (10,000 and 50,000 events/s)")
	collectorArgs := fs.String("collector.args", "", "extra flags for the collector that -stack starts, space-separated")
	collectorBin := fs.String("collector.bin", "", "the shoptrail binary whose collector -stack starts (default: this one), to compare two builds under the same generator and broker")
	lc.RegisterFlags(fs, "text")
	if _, err := parse(fs, &lc, args); err != nil {
		return err
	}
	cfg.Seed = time.Now().UnixNano()
	if *stack {
		url, pids, stop, err := startBenchStack(ctx, *collectorBin, strings.Fields(*collectorArgs))
		if err != nil {
			return err
		}
		defer stop()
		cfg.URL, cfg.WriteKey, cfg.BrokerPID, cfg.CollectorPID = url, "bench", pids.broker, pids.collector
		fmt.Fprintf(os.Stderr, "collector %s and broker: child processes\n", url)
	}
	runs := []loadgen.Config{cfg}
	if *suite {
		single, batch := cfg, cfg
		single.Batch, single.Concurrency, single.Rate = 1, 64, 0
		batch.Batch, batch.Concurrency, batch.Rate = 20, 32, 0
		singleHalf, batchHalf := single, batch
		singleHalf.Rate, batchHalf.Rate = 10000, 50000
		runs = []loadgen.Config{single, batch, singleHalf, batchHalf}
	}
	for _, c := range runs {
		res, err := loadgen.Run(ctx, c)
		if err != nil {
			return err
		}
		fmt.Println(res.String())
	}
	return nil
}

// benchPIDs are the processes startBenchStack started.
type benchPIDs struct{ broker, collector int }

// startBenchStack starts a broker (`shoptrail dev -only=broker` on a
// temporary directory) and a collector (of collectorBin, when given) as
// child processes, so that each one's CPU is its own and the broker's
// memory does not slow the load generator, and waits until the collector
// is ready.
func startBenchStack(ctx context.Context, collectorBin string, extra []string) (url string, pids benchPIDs, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", pids, nil, err
	}
	dir, err := os.MkdirTemp("", "shoptrail-bench-")
	if err != nil {
		return "", pids, nil, err
	}
	var procs []*exec.Cmd
	stop = func() {
		for _, cmd := range slices.Backward(procs) { // collector first, then the broker
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		os.RemoveAll(dir)
	}
	start := func(bin string, quiet bool, env []string, args ...string) error {
		cmd := exec.Command(bin, args...)
		if env != nil {
			cmd.Env = append(os.Environ(), env...)
		}
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if quiet {
			cmd.Stderr = io.Discard // the dev command's banner
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		return nil
	}
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = devstack.FreePort(); err != nil {
			stop()
			return "", pids, nil, err
		}
	}
	broker := fmt.Sprintf("127.0.0.1:%d", ports[0])
	addr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	// The broker is a fixture sharing the CPUs with what is measured (a
	// deployment's Kafka runs elsewhere) and handles every request in one
	// goroutine: on one P it hands work between threads less, 7.1-9.1
	// against 10.3-12.6 µs of its CPU per single event in three A/B pairs.
	if err := start(self, true, []string{"GOMAXPROCS=1"}, "dev", "-only=broker", "-dir="+dir, "-kafka.brokers="+broker, "-log.level=warn"); err != nil {
		stop()
		return "", pids, nil, fmt.Errorf("cannot start the broker: %w", err)
	}
	if err := start(cmp.Or(collectorBin, self), false, nil, append([]string{"collector", "-http.addr=" + addr, "-kafka.brokers=" + broker,
		"-sites=bench=bench", "-limits.ip-rate=-1", "-limits.key-rate=-1", "-log.level=warn"}, extra...)...); err != nil {
		stop()
		return "", pids, nil, fmt.Errorf("cannot start the collector: %w", err)
	}
	url = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, benchPIDs{procs[0].Process.Pid, procs[1].Process.Pid}, stop, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", pids, nil, fmt.Errorf("collector not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func init() {
	commands["loadgen"] = command{"send load to a collector on this machine and report events/s, latency and CPU per event", runLoadgen}
}
