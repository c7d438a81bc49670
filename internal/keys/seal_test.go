package keys

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

func testSealer(t testing.TB, fill byte) *Sealer {
	t.Helper()
	s, err := NewSealer(bytes.Repeat([]byte{fill}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := testSealer(t, 1)
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("key material "), 300)} {
		sealed, err := s.Seal(pt, []byte("signing/kid1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 4 && bytes.Contains(sealed, pt[:len(pt)/2]) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := s.Open(sealed, []byte("signing/kid1"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, want %q", got, pt)
		}
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	s := testSealer(t, 1)
	a, _ := s.Seal([]byte("same"), nil)
	b, _ := s.Seal([]byte("same"), nil)
	if bytes.Equal(a[1:1+nonceSize], b[1:1+nonceSize]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext share a nonce")
	}
}

func TestOpenRejects(t *testing.T) {
	s := testSealer(t, 1)
	aad := []byte("signing/kid1")
	sealed, err := s.Seal([]byte("private key der"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		sealer *Sealer
		sealed []byte
		aad    []byte
	}{
		{"version byte changed", s, flip(0), aad},
		{"nonce changed", s, flip(3), aad},
		{"ciphertext changed", s, flip(1 + nonceSize + 2), aad},
		{"tag changed", s, flip(len(sealed) - 1), aad},
		{"truncated", s, sealed[:len(sealed)-1], aad},
		{"too short for a tag", s, sealed[:1+nonceSize], aad},
		{"empty", s, nil, aad},
		{"wrong aad (other kid)", s, sealed, []byte("signing/kid2")},
		{"wrong aad (other purpose)", s, sealed, []byte("ssh-ca:x/kid1")},
		{"missing aad", s, sealed, nil},
		{"wrong kek", testSealer(t, 2), sealed, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.sealer.Open(tt.sealed, tt.aad)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open error = %v, want ErrOpen", err)
			}
			if pt != nil {
				t.Fatal("Open returned plaintext with an error")
			}
		})
	}
}

func TestNewSealerRejectsWrongKEKSize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer accepted a %d-byte kek", n)
		}
	}
}

func TestOpenSealer(t *testing.T) {
	ctx := context.Background()
	t.Run("fresh store creates the kek and reopens with it", func(t *testing.T) {
		st := newTestStore(t)
		path := filepath.Join(t.TempDir(), "sub", "kek")
		s1, err := OpenSealer(ctx, st, path)
		if err != nil {
			t.Fatalf("first OpenSealer: %v", err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("kek not created: %v", err)
		}
		if _, err := st.GetMeta(ctx, kekCheckKey); err != nil {
			t.Fatalf("kek_check not written: %v", err)
		}
		s2, err := OpenSealer(ctx, st, path)
		if err != nil {
			t.Fatalf("second OpenSealer: %v", err)
		}
		sealed, _ := s1.Seal([]byte("v"), []byte("a"))
		if _, err := s2.Open(sealed, []byte("a")); err != nil {
			t.Fatalf("reopened sealer cannot open: %v", err)
		}
	})
	t.Run("fresh store uses an existing kek file", func(t *testing.T) {
		st := newTestStore(t)
		path := filepath.Join(t.TempDir(), "kek")
		kek, err := CreateKEK(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := OpenSealer(ctx, st, path)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := NewSealer(kek)
		sealed, _ := s.Seal([]byte("v"), nil)
		if _, err := want.Open(sealed, nil); err != nil {
			t.Fatal("OpenSealer did not use the kek on disk")
		}
	})
	t.Run("changed kek is refused", func(t *testing.T) {
		st := newTestStore(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "kek")
		if _, err := OpenSealer(ctx, st, path); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if _, err := CreateKEK(path); err != nil {
			t.Fatal(err)
		}
		_, err := OpenSealer(ctx, st, path)
		if !errors.Is(err, ErrKEKMismatch) {
			t.Fatalf("OpenSealer with another kek: %v, want ErrKEKMismatch", err)
		}
	})
	t.Run("missing kek for an initialised store is refused and not recreated", func(t *testing.T) {
		st := newTestStore(t)
		path := filepath.Join(t.TempDir(), "kek")
		if _, err := OpenSealer(ctx, st, path); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		_, err := OpenSealer(ctx, st, path)
		if !errors.Is(err, ErrKEKMissing) {
			t.Fatalf("OpenSealer without kek: %v, want ErrKEKMissing", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("OpenSealer re-created the kek for an initialised store")
		}
	})
	t.Run("store with keys but no check value is refused", func(t *testing.T) {
		st := newTestStore(t)
		if err := st.PutKey(ctx, store.KeyRecord{ID: "k", Purpose: PurposeSigning, Algorithm: "ES256", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "kek")
		if _, err := OpenSealer(ctx, st, path); err == nil {
			t.Fatal("OpenSealer picked a kek for a store that already holds keys")
		}
	})
	t.Run("losing the initialisation race to another kek", func(t *testing.T) {
		st := newTestStore(t)
		if _, err := OpenSealer(ctx, st, filepath.Join(t.TempDir(), "kek")); err != nil {
			t.Fatal(err)
		}
		// The other replica's check value lands between our read and write.
		racing := &hideMetaOnce{Store: st}
		path := filepath.Join(t.TempDir(), "kek")
		_, err := OpenSealer(ctx, racing, path)
		if !errors.Is(err, ErrKEKMismatch) {
			t.Fatalf("OpenSealer after lost race: %v, want ErrKEKMismatch", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("the kek created for the lost race was left behind")
		}
	})
}

// hideMetaOnce reports the first GetMeta as absent, as if another writer
// raced in right after the read.
type hideMetaOnce struct {
	store.Store
	done bool
}

func (h *hideMetaOnce) GetMeta(ctx context.Context, key string) ([]byte, error) {
	if !h.done {
		h.done = true
		return nil, core.ErrNotFound
	}
	return h.Store.GetMeta(ctx, key)
}

func FuzzOpen(f *testing.F) {
	s := testSealer(f, 9)
	good, _ := s.Seal([]byte("seed"), []byte("aad"))
	f.Add(good, []byte("aad"))
	f.Add([]byte{1}, []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		// Only values this sealer made can open; the fuzzer cannot forge one.
		pt, err := s.Open(sealed, aad)
		if err == nil && !bytes.Equal(pt, []byte("seed")) {
			t.Fatalf("Open accepted forged input, plaintext %q", pt)
		}
		if err != nil && pt != nil {
			t.Fatal("Open returned plaintext with an error")
		}
	})
}
