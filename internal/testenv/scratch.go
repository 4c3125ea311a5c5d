package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// clickHouseDirEnv names the directory the test ClickHouse server keeps its
// data under, overriding the choice of scratchParent.
const clickHouseDirEnv = "SHOPTRAIL_TEST_CLICKHOUSE_DIR"

// scratchParent returns the directory the test ClickHouse server's data
// goes under: SHOPTRAIL_TEST_CLICKHOUSE_DIR if set, else /dev/shm when it is
// a tmpfs with room, else the system's temporary directory. The server
// creates a few hundred files per insert; on this project's build machines
// the root file system is ext4 without a journal, where creating a file cost
// 650-870 µs of kernel CPU against 21 µs on tmpfs (README, "Development"), which
// the benchmarks would otherwise count as ClickHouse's work.
func scratchParent() string {
	if dir := os.Getenv(clickHouseDirEnv); dir != "" {
		return dir
	}
	if memoryBacked("/dev/shm", 4<<30) {
		return "/dev/shm"
	}
	return os.TempDir()
}

// removeStale removes what test servers of processes that no longer run
// left under parent (a test binary killed by its timeout cannot clean up,
// and on tmpfs the files hold memory).
func removeStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, chDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		os.RemoveAll(dir)
	}
}

const (
	chDirPrefix = "shoptrail-clickhouse-"
	ownerFile   = "owner.pid"
)

// newClickHouseDir creates the directory for this test binary's ClickHouse
// server, recording the binary's pid so that a later run can remove it if
// this one is killed.
func newClickHouseDir() (string, error) {
	parent := scratchParent()
	removeStale(parent)
	dir, err := os.MkdirTemp(parent, chDirPrefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// tmpfsMagic is the file system type statfs(2) reports for tmpfs.
const tmpfsMagic = 0x01021994

// memoryBacked reports whether dir is a tmpfs with at least free bytes
// available.
func memoryBacked(dir string, free uint64) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == tmpfsMagic && st.Bavail*uint64(st.Bsize) >= free
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
