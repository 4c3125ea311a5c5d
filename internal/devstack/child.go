package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a server running as a child process of this one (ClickHouse,
// ZooKeeper, Grafana, Prometheus): in its own process group, killed if this
// process dies (Pdeathsig), so tests never leave one behind, and with its
// output appended to a log file.
type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // exit error, valid after exited is closed
	log    *slog.Logger
}

// startChild starts cmd, its output appended to logPath.
func startChild(name string, cmd *exec.Cmd, logPath string, log *slog.Logger) (*child, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the %s log: %w", name, err)
	}
	defer out.Close() // the child keeps its own descriptor
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{}), log: log}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// waitUntil polls ready every interval until it holds, and fails when the
// child exits or timeout passes; what says what was waited for.
func (c *child) waitUntil(ctx context.Context, timeout, every time.Duration, what string, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("server exited: %v", c.err)
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// answersOK reports whether GET url answers 200.
func answersOK(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop terminates the child (SIGTERM, then SIGKILL to its process group
// after 10 seconds) and waits for it. It reports false when the child had
// already exited, so it is safe to call more than once.
func (c *child) stop() bool {
	select {
	case <-c.exited:
		return false
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
	return true
}

// Exited is closed when the server process has exited.
func (c *child) Exited() <-chan struct{} { return c.exited }
