package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileOptions configures a FileSink.
type FileOptions struct {
	// DisableFsync skips fsync after each batch. The zero value is durable:
	// Write returns only after the batch reached stable storage.
	DisableFsync bool
	// Logger receives the torn-tail repair notice; nil means slog.Default().
	Logger *slog.Logger
	// MaxBytes rotates the file before a batch would grow it past this
	// size (0: never): the file is renamed to PATH.<UTC time> and a new one
	// started. The hash chain continues across the segments.
	MaxBytes int64
}

// FileSink appends events as JSON lines (the canonical form, see chain.go)
// to a file created with mode 0600 in a directory created with mode 0700.
type FileSink struct {
	path string
	opts FileOptions

	mu   sync.Mutex // Write and Close may be called from different goroutines
	f    *os.File
	buf  []byte
	size int64 // bytes known written; a failed Write truncates back to it
}

// NewFileSink opens (or creates) the record at path for appending. A torn
// last line — a write that was cut off by a crash and never acknowledged —
// is cut off so that new lines start cleanly; the byte count is logged.
func NewFileSink(path string, o FileOptions) (*FileSink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: file sink: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: file sink: %w", err)
	}
	size, torn, err := completeLength(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: file sink %s: %w", path, err)
	}
	if torn > 0 {
		o.Logger.Warn("audit: cutting torn last line of audit file", "path", path, "bytes", torn, "offset", size)
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: file sink %s: cut torn tail: %w", path, err)
		}
	}
	return &FileSink{path: path, opts: o, f: f, size: size}, nil
}

// Name returns "file:" and the path.
func (s *FileSink) Name() string { return "file:" + s.path }

// Write appends events, one line each, with a single write and one fsync.
func (s *FileSink) Write(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("audit: file sink is closed")
	}
	s.buf = s.buf[:0]
	defer func() {
		if cap(s.buf) > 1<<20 {
			s.buf = nil // do not pin a burst's buffer forever
		}
	}()
	for i := range events {
		b, err := lineOf(&events[i])
		if err != nil {
			return err
		}
		s.buf = append(s.buf, b...)
		s.buf = append(s.buf, '\n')
	}
	if s.opts.MaxBytes > 0 && s.size > 0 && s.size+int64(len(s.buf)) > s.opts.MaxBytes {
		if err := s.rotateLocked(); err != nil {
			return err
		}
	}
	if _, err := s.f.Write(s.buf); err != nil {
		// Leave no partial line behind for the next batch to glue onto.
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("audit: file sink %s: write: %w", s.path, err)
	}
	if !s.opts.DisableFsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("audit: file sink %s: fsync: %w", s.path, err)
		}
	}
	s.size += int64(len(s.buf))
	return nil
}

// Close syncs and closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	s.f = nil
	if err != nil {
		return fmt.Errorf("audit: file sink %s: close: %w", s.path, err)
	}
	return nil
}

// CommitDelay bounds how long a busy durable file sink waits to gather a
// group as large as its previous one before an fsync: at thousands of
// events per second, fsyncs back to back cost more CPU than the wait.
func (s *FileSink) CommitDelay() time.Duration {
	if s.opts.DisableFsync {
		return 0
	}
	return time.Millisecond
}

var _ Committer = (*FileSink)(nil)

// TornTailError reports a last line without its newline: a write cut short.
// LastEvent returns it together with the last complete event.
type TornTailError struct {
	Path   string
	Offset int64 // where the torn line starts
	Bytes  int64 // its length
}

func (e *TornTailError) Error() string {
	return fmt.Sprintf("audit: %s: torn last line of %d bytes at offset %d ignored", e.Path, e.Bytes, e.Offset)
}

// LastEvent returns the last complete event of the record at path, to pass
// as Options.Resume after a restart. It returns nil, nil when the file does
// not exist or holds no complete line. When the file ends in a torn line, it
// returns the last complete event and a *TornTailError (ignore it after
// logging; NewFileSink cuts that line). The event's hash is checked.
func LastEvent(path string) (*Event, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: last event: %w", err)
	}
	defer f.Close()
	end, torn, err := completeLength(f)
	if err != nil {
		return nil, fmt.Errorf("audit: last event of %s: %w", path, err)
	}
	var tornErr error
	if torn > 0 {
		tornErr = &TornTailError{Path: path, Offset: end, Bytes: torn}
	}
	if end == 0 {
		return nil, tornErr
	}
	line, err := lineBefore(f, end)
	if err != nil {
		return nil, fmt.Errorf("audit: last event of %s: %w", path, err)
	}
	e, err := parseLine(line)
	if err != nil {
		return nil, fmt.Errorf("audit: last event of %s: %w", path, err)
	}
	if h, err := computeHash(e); err != nil || h != e.Hash {
		return nil, fmt.Errorf("audit: last event of %s: seq %d: hash does not match its content", path, e.Seq)
	}
	return e, tornErr
}

// completeLength returns the length of f up to and including its last
// newline, and the number of bytes after it.
func completeLength(f *os.File) (int64, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := st.Size()
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return 0, 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			good := end - n + int64(i) + 1
			return good, size - good, nil
		}
		end -= n
	}
	return 0, size, nil
}

// lineBefore returns the line that ends with the newline at end-1.
func lineBefore(f *os.File, end int64) ([]byte, error) {
	var line []byte
	buf := make([]byte, 64<<10)
	stop := end - 1 // drop the newline
	for pos := stop; pos > 0; {
		n := int64(len(buf))
		if n > pos {
			n = pos
		}
		if _, err := f.ReadAt(buf[:n], pos-n); err != nil && err != io.EOF {
			return nil, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return append(append([]byte(nil), buf[i+1:n]...), line...), nil
		}
		line = append(append([]byte(nil), buf[:n]...), line...)
		pos -= n
	}
	return line, nil
}

// parseLine decodes one record line strictly (no unknown fields, numbers kept
// verbatim) so that it can be re-encoded to the same bytes.
func parseLine(line []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var e Event
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("not an event: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not an event: data after the JSON object")
	}
	return &e, nil
}

var _ Sink = (*FileSink)(nil)
