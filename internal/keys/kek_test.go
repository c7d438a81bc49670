package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKEK(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KEKSize))
	tests := []struct {
		name    string
		content string // "" with write=false: no file
		write   bool
		mode    fs.FileMode
		wantErr string
	}{
		{name: "valid with trailing newline", content: good + "\n", write: true, mode: 0o600},
		{name: "valid owner read-only", content: good, write: true, mode: 0o400},
		{name: "missing file", wantErr: "does not exist"},
		{name: "group readable", content: good, write: true, mode: 0o640, wantErr: "group and others must have no access"},
		{name: "world readable", content: good, write: true, mode: 0o604, wantErr: "group and others must have no access"},
		{name: "too short", content: base64.StdEncoding.EncodeToString(make([]byte, 16)), write: true, mode: 0o600, wantErr: "holds 16 bytes, want 32"},
		{name: "too long", content: base64.StdEncoding.EncodeToString(make([]byte, 64)), write: true, mode: 0o600, wantErr: "holds 64 bytes, want 32"},
		{name: "not base64", content: "this is not base64 at all!!", write: true, mode: 0o600, wantErr: "not base64"},
		{name: "huge file", content: strings.Repeat("A", 4096), write: true, mode: 0o600, wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kek")
			if tt.write {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			kek, err := LoadKEK(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadKEK: %v", err)
				}
				if !bytes.Equal(kek, bytes.Repeat([]byte{7}, KEKSize)) {
					t.Fatalf("LoadKEK returned the wrong key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadKEK error = %v, want it to contain %q", err, tt.wantErr)
			}
			if kek != nil {
				t.Fatalf("LoadKEK returned a key with an error")
			}
		})
	}
}

func TestLoadKEKMissingWrapsNotExist(t *testing.T) {
	_, err := LoadKEK(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
	}
}

func TestCreateKEKWritesPrivateFileInPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "stint")
	path := filepath.Join(dir, "kek")
	kek, err := CreateKEK(path)
	if err != nil {
		t.Fatalf("CreateKEK: %v", err)
	}
	if len(kek) != KEKSize {
		t.Fatalf("kek is %d bytes", len(kek))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kek file mode %#o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("kek dir mode %#o, want 0700", di.Mode().Perm())
	}
	loaded, err := LoadKEK(path)
	if err != nil {
		t.Fatalf("LoadKEK after CreateKEK: %v", err)
	}
	if !bytes.Equal(loaded, kek) {
		t.Fatal("LoadKEK returned a different key than CreateKEK")
	}
}

func TestCreateKEKNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	first, err := CreateKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateKEK(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateKEK error = %v, want fs.ErrExist", err)
	}
	loaded, err := LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded, first) {
		t.Fatal("second CreateKEK changed the key on disk")
	}
}

func TestCreateKEKKeysDiffer(t *testing.T) {
	dir := t.TempDir()
	a, err := CreateKEK(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := CreateKEK(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two generated keks are equal")
	}
}
