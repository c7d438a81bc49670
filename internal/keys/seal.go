package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// sealVersion is the first byte of every sealed value. A new format (another
// cipher, a KEK id) gets a new version so old records stay readable.
const sealVersion byte = 1

const nonceSize = 12 // 96-bit GCM nonce

// Errors callers may branch on.
var (
	// ErrOpen means a sealed value failed to decrypt: it was altered, it
	// belongs to another record, or it was sealed under another KEK.
	ErrOpen = errors.New("keys: sealed value cannot be opened (tampered, wrong record or wrong kek)")
	// ErrKEKMismatch means the KEK file is not the one the store was
	// initialised with.
	ErrKEKMismatch = errors.New("keys: the kek does not match the one this store was initialised with")
	// ErrKEKMissing means the store was initialised but the KEK file is gone.
	ErrKEKMissing = errors.New("keys: the store is initialised but its kek file is missing")
)

// Sealer encrypts records under the KEK with AES-256-GCM. Each Seal uses a
// fresh random nonce; the additional data (AAD) names the record, so a
// sealed value copied onto another record does not open. A Sealer is safe
// for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte KEK.
func NewSealer(kek []byte) (*Sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("keys: kek is %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keys: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: gcm: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad. The result is
// version || nonce || ciphertext+tag.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("keys: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:1+nonceSize], plaintext, fullAAD(sealVersion, aad)), nil
}

// Open decrypts a value made by Seal with the same aad. Any failure is
// ErrOpen, with no detail that could help an attacker.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 1+nonceSize+s.aead.Overhead() {
		return nil, fmt.Errorf("keys: sealed value too short: %w", ErrOpen)
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("keys: sealed value has unknown version %d: %w", sealed[0], ErrOpen)
	}
	pt, err := s.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], fullAAD(sealed[0], aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// fullAAD binds the format version too, so a downgrade cannot reinterpret
// a record.
func fullAAD(version byte, aad []byte) []byte {
	b := make([]byte, 0, 1+len(aad))
	return append(append(b, version), aad...)
}

// kekCheckKey is the store meta key holding a sealed known value: opening
// it proves the KEK on disk is the one the store's keys are sealed under.
const kekCheckKey = "kek_check"

var kekCheckValue = []byte("stint kek check v1")
var kekCheckAAD = []byte("meta/" + kekCheckKey)

// OpenSealer returns the Sealer for a store. On a fresh store it uses the
// KEK at kekPath, creating it when missing, and records a check value. On
// an initialised store it requires that same KEK: a missing file is
// ErrKEKMissing and another KEK is ErrKEKMismatch. It never re-keys
// silently, which would orphan every sealed key.
func OpenSealer(ctx context.Context, st store.Store, kekPath string) (*Sealer, error) {
	check, err := st.GetMeta(ctx, kekCheckKey)
	switch {
	case err == nil:
		return openInitialised(check, kekPath)
	case !errors.Is(err, core.ErrNotFound):
		return nil, fmt.Errorf("keys: read kek check: %w", err)
	}
	// A store with keys but no check value was initialised by something
	// else; a new KEK could not open them.
	if recs, err := st.ListKeys(ctx, PurposeSigning); err != nil {
		return nil, fmt.Errorf("keys: list signing keys: %w", err)
	} else if len(recs) > 0 {
		return nil, fmt.Errorf("keys: store holds signing keys but no kek check value; refusing to pick a kek")
	}

	created := false
	kek, err := LoadKEK(kekPath)
	if errors.Is(err, fs.ErrNotExist) {
		kek, err = CreateKEK(kekPath)
		created = err == nil
	}
	if err != nil {
		return nil, err
	}
	s, err := NewSealer(kek)
	if err != nil {
		return nil, err
	}
	sealed, err := s.Seal(kekCheckValue, kekCheckAAD)
	if err != nil {
		return nil, err
	}
	stored, err := st.PutMetaIfAbsent(ctx, kekCheckKey, sealed)
	if err != nil {
		return nil, fmt.Errorf("keys: write kek check: %w", err)
	}
	if err := verifyCheck(s, stored); err != nil {
		// Another replica initialised the store first with its own KEK.
		// Remove the key we just made so a restart reports it missing
		// instead of mismatched, pointing the operator at the right fix.
		if created {
			os.Remove(kekPath)
		}
		return nil, fmt.Errorf("keys: another process initialised the store with a different kek; copy its kek file to %s: %w", kekPath, err)
	}
	return s, nil
}

func openInitialised(check []byte, kekPath string) (*Sealer, error) {
	kek, err := LoadKEK(kekPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: restore %s from backup (a new kek cannot open the stored keys)", ErrKEKMissing, kekPath)
	}
	if err != nil {
		return nil, err
	}
	s, err := NewSealer(kek)
	if err != nil {
		return nil, err
	}
	if err := verifyCheck(s, check); err != nil {
		return nil, fmt.Errorf("keys: kek file %s: %w", kekPath, err)
	}
	return s, nil
}

func verifyCheck(s *Sealer, sealed []byte) error {
	pt, err := s.Open(sealed, kekCheckAAD)
	if err != nil || !bytes.Equal(pt, kekCheckValue) {
		return ErrKEKMismatch
	}
	return nil
}
