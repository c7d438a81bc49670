package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// segmentTime names a rotated segment: PATH.<this layout>, which sorts in
// time order as text.
const segmentTime = "20060102T150405.000000000Z"

// rotateLocked closes the current file durably, renames it to a segment
// and starts a new file at the path. The caller holds s.mu.
func (s *FileSink) rotateLocked() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit: file sink %s: rotate: %w", s.path, err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit: file sink %s: rotate: %w", s.path, err)
	}
	s.f = nil
	seg := s.path + "." + time.Now().UTC().Format(segmentTime)
	if err := os.Rename(s.path, seg); err != nil {
		return fmt.Errorf("audit: file sink %s: rotate: %w", s.path, err)
	}
	if err := s.openLocked(); err != nil {
		return err
	}
	syncDir(filepath.Dir(s.path)) // make the rename and the new file durable
	s.opts.Logger.Info("audit: rotated file", "path", s.path, "segment", seg)
	return nil
}

// openLocked opens a fresh file at the path for appending.
func (s *FileSink) openLocked() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: file sink %s: open: %w", s.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: file sink %s: %w", s.path, err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Reopen closes the file and opens the path again, for external rotation
// (logrotate renames the file, then sends SIGHUP). Events already written
// stay in the renamed file; the chain continues in the new one.
func (s *FileSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("audit: file sink is closed")
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	s.f = nil
	if err != nil {
		return fmt.Errorf("audit: file sink %s: reopen: %w", s.path, err)
	}
	return s.openLocked()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Segments lists the record at path in chain order: the segments a
// rotating FileSink left (PATH.<time>), oldest first, then path itself.
func Segments(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, fmt.Errorf("audit: segments of %s: %w", path, err)
	}
	var segs []string
	for _, m := range matches {
		if _, err := time.Parse(segmentTime, strings.TrimPrefix(m, path+".")); err == nil {
			segs = append(segs, m)
		}
	}
	sort.Strings(segs)
	return append(segs, path), nil
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// LastEventOfRecord is LastEvent for a record that may be rotated: when
// the current file holds no event (a crash right after rotating), the last
// event of the newest segment continues the chain.
func LastEventOfRecord(path string) (*Event, error) {
	segs, err := Segments(path)
	if err != nil {
		return nil, err
	}
	var torn error
	for i := len(segs) - 1; i >= 0; i-- {
		e, err := LastEvent(segs[i])
		var te *TornTailError
		switch {
		case err != nil && !errors.As(err, &te):
			return nil, err
		case err != nil && torn == nil:
			torn = err
		}
		if e != nil {
			return e, torn
		}
	}
	return nil, torn
}
