package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/shoptrail/shoptrail/collector/loadgen"
	"github.com/shoptrail/shoptrail/internal/devstack"
)

// runLoadgen sends load to a collector and reports events/s, latency and
// CPU per event. With -stack it first starts its own broker (in this
// process, in memory) and collector (a child process, so its CPU is its
// own), both on free loopback ports, and stops them afterwards; -suite runs
// the benchmark set of `make bench`.
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
	stack := fs.Bool("stack", false, "start a broker and a collector on free loopback ports for the run")
	suite := fs.Bool("suite", false, "run the benchmark set: single events and 20-event batches at full rate, then at half the targets (10,000 and 50,000 events/s)")
	collectorArgs := fs.String("collector.args", "", "extra flags for the collector that -stack starts, space-separated")
	lc.RegisterFlags(fs, "text")
	if _, err := parse(fs, &lc, args); err != nil {
		return err
	}
	cfg.Seed = time.Now().UnixNano()
	if *stack {
		url, stop, err := startBenchStack(ctx, strings.Fields(*collectorArgs))
		if err != nil {
			return err
		}
		defer stop()
		cfg.URL, cfg.WriteKey = url, "bench"
		fmt.Fprintf(os.Stderr, "collector %s (child process), broker in this process\n", url)
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
		if *stack {
			res.SelfName = "+broker"
		}
		fmt.Println(res.String())
	}
	return nil
}

// startBenchStack starts an in-memory broker here and a collector child
// process, and waits until the collector is ready.
func startBenchStack(ctx context.Context, extra []string) (url string, stop func(), err error) {
	broker, err := devstack.StartBroker(devstack.BrokerConfig{})
	if err != nil {
		return "", nil, err
	}
	port, err := devstack.FreePort()
	if err != nil {
		broker.Close()
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	self, err := os.Executable()
	if err != nil {
		broker.Close()
		return "", nil, err
	}
	args := append([]string{"collector", "-http.addr=" + addr, "-kafka.brokers=" + strings.Join(broker.Addrs, ","),
		"-sites=bench=bench", "-limits.ip-rate=-1", "-limits.key-rate=-1", "-log.level=warn"}, extra...)
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		broker.Close()
		return "", nil, fmt.Errorf("cannot start the collector: %w", err)
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		broker.Close()
	}
	url = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stop, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("collector not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func init() {
	commands["loadgen"] = command{"send load to a collector on this machine and report events/s, latency and CPU per event", runLoadgen}
}
