package keys

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// memStore is an in-memory store.Store with the semantics keys relies on
// (write-once meta, replace-by-id keys, newest-first listing). Lease and
// lock methods are not used by this package.
type memStore struct {
	mu   sync.Mutex
	meta map[string][]byte
	keys map[string]store.KeyRecord
}

func newMemStore() *memStore {
	return &memStore{meta: map[string][]byte{}, keys: map[string]store.KeyRecord{}}
}

// newTestStore returns the store the tests run against.
func newTestStore(t testing.TB) store.Store {
	t.Helper()
	return newMemStore()
}

// dump returns every byte the store holds, for the no-cleartext check.
func dump(t testing.TB, st store.Store) []byte {
	t.Helper()
	m, ok := st.(*memStore)
	if !ok {
		t.Fatalf("dump: unsupported store %T", st)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var b bytes.Buffer
	for k, v := range m.meta {
		b.WriteString(k)
		b.Write(v)
	}
	for _, r := range m.keys {
		b.WriteString(r.ID + r.Purpose + r.Algorithm)
		b.Write(r.Private)
		b.Write(r.Public)
	}
	return b.Bytes()
}

var errUnused = errors.New("memstore: not used by keys tests")

func (m *memStore) Migrate(context.Context) error { return nil }

func (m *memStore) GetMeta(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.meta[key]
	if !ok {
		return nil, core.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (m *memStore) PutMetaIfAbsent(_ context.Context, key string, value []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.meta[key]; ok {
		return slices.Clone(v), nil
	}
	m.meta[key] = slices.Clone(value)
	return slices.Clone(value), nil
}

func (m *memStore) PutKey(_ context.Context, k store.KeyRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k.Private, k.Public = slices.Clone(k.Private), slices.Clone(k.Public)
	m.keys[k.ID] = k
	return nil
}

func (m *memStore) ListKeys(_ context.Context, purpose string) ([]store.KeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.KeyRecord
	for _, k := range m.keys {
		if k.Purpose == purpose {
			k.Private, k.Public = slices.Clone(k.Private), slices.Clone(k.Public)
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b store.KeyRecord) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (m *memStore) CreateLease(context.Context, core.Lease) error { return errUnused }
func (m *memStore) GetLease(context.Context, string) (core.Lease, error) {
	return core.Lease{}, errUnused
}
func (m *memStore) UpdateLease(context.Context, core.Lease, ...core.LeaseState) (bool, error) {
	return false, errUnused
}
func (m *memStore) ListLeases(context.Context, store.LeaseFilter) ([]core.Lease, error) {
	return nil, errUnused
}
func (m *memStore) DueLeases(context.Context, time.Time, int) ([]core.Lease, error) {
	return nil, errUnused
}
func (m *memStore) CountLeases(context.Context, store.LeaseFilter) (int, error) {
	return 0, errUnused
}
func (m *memStore) AcquireLock(context.Context, string, string, time.Duration) (bool, error) {
	return false, errUnused
}
func (m *memStore) ReleaseLock(context.Context, string, string) error { return errUnused }
func (m *memStore) Close() error                                      { return nil }

var _ store.Store = (*memStore)(nil)
