package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options configures a Scanner.
type Options struct {
	// MaxFileSize skips larger files (default 10 MiB): generated bundles
	// and data dumps cost time and rarely hold hand-written keys.
	MaxFileSize int64
	// Workers is the number of files scanned at once (default: all CPUs).
	Workers int
	// FingerprintKey keys the HMAC of fingerprints (default DefaultFingerprintKey).
	FingerprintKey []byte
	// NoGitignore scans files that .gitignore excludes.
	NoGitignore bool
}

// Stats counts what a scan read.
type Stats struct {
	Files   int64 `json:"files"`
	Bytes   int64 `json:"bytes"`
	Skipped int64 `json:"skipped"` // binary, too large or unreadable
}

// Scanner walks files and directories with a Detector.
type Scanner struct {
	det  *Detector
	opts Options
}

// New returns a Scanner.
func New(opts Options) *Scanner {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = 10 << 20
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	return &Scanner{det: NewDetector(opts.FingerprintKey), opts: opts}
}

// Detector returns the scanner's detector.
func (s *Scanner) Detector() *Detector { return s.det }

// ScanPaths scans files and directory trees. emit is called for every
// finding, from one goroutine at a time. Memory stays flat: each worker
// holds one file at most, and findings stream to emit.
func (s *Scanner) ScanPaths(ctx context.Context, paths []string, emit func(Finding)) (Stats, error) {
	var st Stats
	files := make(chan string, 256)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for p := range files {
				data, err := readCapped(p, s.opts.MaxFileSize, &buf)
				if err != nil || isBinary(data) {
					atomic.AddInt64(&st.Skipped, 1)
					continue
				}
				atomic.AddInt64(&st.Files, 1)
				atomic.AddInt64(&st.Bytes, int64(len(data)))
				fs := s.det.Scan(p, data)
				if len(fs) > 0 {
					mu.Lock()
					for _, f := range fs {
						emit(f)
					}
					mu.Unlock()
				}
			}
		}()
	}
	var walkErr error
	for _, root := range paths {
		if err := s.walk(ctx, root, files); err != nil {
			walkErr = errors.Join(walkErr, err)
		}
	}
	close(files)
	wg.Wait()
	return st, walkErr
}

// walk sends every file under root that is not ignored.
func (s *Scanner) walk(ctx context.Context, root string, files chan<- string) error {
	info, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if !info.IsDir() {
		files <- root
		return nil
	}
	ignores := map[string]ignoreList{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries are skipped, not fatal
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		parent := filepath.ToSlash(filepath.Dir(rel))
		if parent == "." {
			parent = ""
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			if rel == "" {
				ignores[""] = ignoreList(nil).withDir(root, "")
				return nil
			}
			l := ignores[parent]
			if !s.opts.NoGitignore && l.ignored(rel, true) {
				return filepath.SkipDir
			}
			if !s.opts.NoGitignore {
				l = l.withDir(root, rel)
			}
			ignores[rel] = l
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if !s.opts.NoGitignore && ignores[parent].ignored(rel, false) {
			return nil
		}
		select {
		case files <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan: walk %s: %w", root, err)
	}
	return nil
}

// readCapped reads a file into *buf (reused between files) unless it is
// larger than max.
func readCapped(p string, max int64, buf *[]byte) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > max {
		return nil, errors.New("scan: file too large")
	}
	n := int(info.Size())
	if cap(*buf) < n+1 {
		*buf = make([]byte, n+1)
	}
	b := (*buf)[:n+1]
	m, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if int64(m) > max {
		return nil, errors.New("scan: file too large")
	}
	return b[:m], nil
}

// isBinary uses git's heuristic: a NUL byte in the first 8000 bytes.
func isBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0
}
