// Package chdb runs SQL on current ClickHouse (26.x) in-process through
// chDB's libchdb.so, loaded with purego (no cgo). It exists so tests can
// check that every migration and query also runs on current ClickHouse, not
// only on the 18.16 server Debian ships.
package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvLib names the environment variable that points at libchdb.so.
const EnvLib = "SHOPTRAIL_CHDB_LIB"

// ErrNoLib is returned when libchdb.so cannot be found.
var ErrNoLib = errors.New("libchdb.so not found: run `make deps` (it unpacks npm's @chdb/lib-linux-x64-gnu into .cache/chdb) or set " + EnvLib)

var (
	loadOnce sync.Once
	loadErr  error

	chdbConnect       func(argc int32, argv **byte) unsafe.Pointer
	chdbCloseConn     func(conn unsafe.Pointer)
	chdbQuery         func(conn unsafe.Pointer, query, format string) unsafe.Pointer
	chdbResultBuffer  func(res unsafe.Pointer) *byte
	chdbResultLength  func(res unsafe.Pointer) uintptr
	chdbResultError   func(res unsafe.Pointer) string
	chdbDestroyResult func(res unsafe.Pointer)
)

// FindLib returns the path of libchdb.so: $SHOPTRAIL_CHDB_LIB, or
// .cache/chdb/libchdb.so in the module root above the working directory.
func FindLib() (string, error) {
	if p := os.Getenv(EnvLib); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ".cache", "chdb", "libchdb.so")
			if _, err := os.Stat(p); err != nil {
				return "", ErrNoLib
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoLib
		}
		dir = parent
	}
}

func load() error {
	loadOnce.Do(func() {
		path, err := FindLib()
		if err != nil {
			loadErr = err
			return
		}
		lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("cannot load %s: %w", path, err)
			return
		}
		purego.RegisterLibFunc(&chdbConnect, lib, "chdb_connect")
		purego.RegisterLibFunc(&chdbCloseConn, lib, "chdb_close_conn")
		purego.RegisterLibFunc(&chdbQuery, lib, "chdb_query")
		purego.RegisterLibFunc(&chdbResultBuffer, lib, "chdb_result_buffer")
		purego.RegisterLibFunc(&chdbResultLength, lib, "chdb_result_length")
		purego.RegisterLibFunc(&chdbResultError, lib, "chdb_result_error")
		purego.RegisterLibFunc(&chdbDestroyResult, lib, "chdb_destroy_query_result")
	})
	return loadErr
}

// Session is a chDB connection with its data in a directory. chDB allows
// one open session per process; Close it before opening another.
type Session struct {
	mu     sync.Mutex
	handle unsafe.Pointer // chdb_connection* as returned by chdb_connect
	conn   unsafe.Pointer // *handle
}

// Open starts chDB with its data in dir.
func Open(dir string) (*Session, error) {
	if err := load(); err != nil {
		return nil, err
	}
	args := []string{"clickhouse", "--path=" + dir}
	cargs := make([]*byte, len(args)+1)
	keep := make([][]byte, len(args))
	for i, a := range args {
		keep[i] = append([]byte(a), 0)
		cargs[i] = &keep[i][0]
	}
	h := chdbConnect(int32(len(args)), &cargs[0])
	if h == nil {
		return nil, fmt.Errorf("chdb_connect failed for %s", dir)
	}
	conn := *(*unsafe.Pointer)(h)
	if conn == nil {
		return nil, fmt.Errorf("chdb_connect returned no connection for %s", dir)
	}
	return &Session{handle: h, conn: conn}, nil
}

// Query runs one statement and returns its output in the given format
// (for example "TSV" or "JSONEachRow").
func (s *Session) Query(query, format string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := chdbQuery(s.conn, query, format)
	if res == nil {
		return "", fmt.Errorf("chdb_query returned no result for %q", query)
	}
	defer chdbDestroyResult(res)
	if msg := chdbResultError(res); msg != "" {
		return "", fmt.Errorf("chdb: %s", msg)
	}
	n := int(chdbResultLength(res))
	if n == 0 {
		return "", nil
	}
	return string(unsafe.Slice(chdbResultBuffer(res), n)), nil
}

// Exec runs one statement and discards its output. Arguments are not
// supported; it exists to satisfy the migration runner's Execer.
func (s *Session) Exec(_ context.Context, query string, args ...any) error {
	if len(args) > 0 {
		return errors.New("chdb: Exec does not take arguments")
	}
	_, err := s.Query(query, "TSV")
	return err
}

// Close closes the session.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle != nil {
		chdbCloseConn(s.handle)
		s.handle, s.conn = nil, nil
	}
}
