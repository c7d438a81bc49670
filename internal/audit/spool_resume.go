package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// lastFile holds the last chained event a spool delivered, kept when a
// drained spool is emptied so that the chain can resume from it.
const lastFile = "spool.last"

// LastSpooledEvent returns the last chained event (audit.gap events are
// skipped) of the spool in dir — the newest undelivered one, or else the
// last one delivered before the spool was emptied — to pass as
// Options.Resume after a restart when there is no file record. It returns
// nil, nil for an empty or missing spool. Call it before the sink opens the
// spool: its sender empties a drained spool. The event's hash is checked.
func LastSpooledEvent(dir string) (*Event, error) {
	f, err := os.Open(filepath.Join(dir, "spool.jsonl"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("audit: last spooled event: %w", err)
	default:
		defer f.Close()
		end, _, err := completeLength(f) // a torn line was never acknowledged
		for err == nil && end > 0 {
			var line []byte
			if line, err = lineBefore(f, end); err != nil {
				break
			}
			if e, err := checkedEvent(line); err != nil {
				return nil, fmt.Errorf("audit: last spooled event in %s: %w", dir, err)
			} else if e != nil {
				return e, nil
			}
			end -= int64(len(line)) + 1
		}
		if err != nil {
			return nil, fmt.Errorf("audit: last spooled event in %s: %w", dir, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, lastFile))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(b) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: last spooled event: %w", err)
	}
	e, err := checkedEvent(b)
	if err != nil {
		return nil, fmt.Errorf("audit: last spooled event in %s: %w", dir, err)
	}
	return e, nil
}

// checkedEvent parses a spool line; nil, nil for an audit.gap event.
func checkedEvent(line []byte) (*Event, error) {
	e, err := parseLine(line)
	if err != nil {
		return nil, err
	}
	if e.Seq == 0 {
		return nil, nil
	}
	if h, err := computeHash(e); err != nil || h != e.Hash {
		return nil, fmt.Errorf("seq %d: hash does not match its content", e.Seq)
	}
	return e, nil
}

// lastChained returns the last line of lines that is a chained event (not
// an audit.gap event), or nil.
func lastChained(lines [][]byte) []byte {
	for i := len(lines) - 1; i >= 0; i-- {
		if e, err := parseLine(lines[i]); err == nil && e.Seq > 0 {
			return lines[i]
		}
	}
	return nil
}

// saveLast keeps line in spool.last (written aside and renamed, so a crash
// leaves the old or the new line).
func (s *spool) saveLast(line []byte) error {
	path := filepath.Join(s.so.SpoolDir, lastFile)
	if err := os.WriteFile(path+".tmp", append(append([]byte(nil), line...), '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
