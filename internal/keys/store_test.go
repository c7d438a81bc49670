package keys

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/sqlite"
)

// storeDirs remembers each test store's directory for dump.
var (
	storeDirsMu sync.Mutex
	storeDirs   = map[store.Store]string{}
)

// newTestStore returns a migrated SQLite store in a temporary directory:
// the real embedded store, so the tests see its ordering and time handling.
func newTestStore(t testing.TB) store.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "stint.db"))
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate sqlite store: %v", err)
	}
	storeDirsMu.Lock()
	storeDirs[st] = dir
	storeDirsMu.Unlock()
	return st
}

// dump returns every byte of the store's files (database, WAL, shared
// memory), for the no-cleartext check.
func dump(t testing.TB, st store.Store) []byte {
	t.Helper()
	storeDirsMu.Lock()
	dir, ok := storeDirs[st]
	storeDirsMu.Unlock()
	if !ok {
		t.Fatalf("dump: not a test store: %T", st)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.Bytes()
}
