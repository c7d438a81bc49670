// Package keys holds stint's private keys: the key-encryption key (KEK) on
// disk, envelope encryption of every private key stored in the database,
// the JWT signing keys with rotation and the public JWKS, and the other
// long-lived private keys (SSH CA, X.509 CA, audit) by purpose.
package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// KEKSize is the size of the key-encryption key: an AES-256 key.
const KEKSize = 32

// maxKEKFile bounds what LoadKEK reads: a 32-byte key in base64 is 44 bytes,
// so anything much larger is the wrong file.
const maxKEKFile = 1024

// LoadKEK reads the key-encryption key from path: 32 random bytes in
// base64 text. It refuses a file that group or others may read, because the
// KEK unlocks every private key in the store. A missing file is reported
// with an error that wraps fs.ErrNotExist.
func LoadKEK(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keys: kek file %s does not exist: %w", path, err)
		}
		return nil, fmt.Errorf("keys: open kek file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: stat kek file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: kek file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; its ACLs are the operator's job.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("keys: kek file %s has mode %#o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxKEKFile+1))
	if err != nil {
		return nil, fmt.Errorf("keys: read kek file: %w", err)
	}
	if len(buf) > maxKEKFile {
		return nil, fmt.Errorf("keys: kek file %s is too large to be a key", path)
	}
	text := bytes.TrimSpace(buf)
	kek := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	m, err := base64.StdEncoding.Decode(kek, text)
	if err != nil {
		// The decode error names a byte offset only, never key material.
		return nil, fmt.Errorf("keys: kek file %s is not base64: %w", path, err)
	}
	if m != KEKSize {
		return nil, fmt.Errorf("keys: kek file %s holds %d bytes, want %d", path, m, KEKSize)
	}
	return kek[:m], nil
}

// CreateKEK generates a new key-encryption key and writes it to path with
// mode 0600, creating the directory with mode 0700 when it is missing. It
// never overwrites an existing file: replacing a KEK would make every key
// in the store unreadable.
func CreateKEK(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keys: create kek directory: %w", err)
	}
	kek := make([]byte, KEKSize)
	if _, err := rand.Read(kek); err != nil {
		return nil, fmt.Errorf("keys: generate kek: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keys: create kek file: %w", err)
	}
	text := base64.StdEncoding.AppendEncode(nil, kek)
	text = append(text, '\n')
	_, werr := f.Write(text)
	if werr == nil {
		// The key must survive a crash right after the store records it.
		werr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("keys: write kek file: %w", err)
	}
	return kek, nil
}
