package audit

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// StreamSink writes events as JSON lines (the canonical form) to a writer,
// typically os.Stdout for a container's log collector. Nothing is fsynced:
// use it as a best-effort sink.
type StreamSink struct {
	name string
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
}

// NewStreamSink returns a sink writing to w; name identifies it (e.g. "stdout").
func NewStreamSink(name string, w io.Writer) *StreamSink {
	return &StreamSink{name: name, w: w}
}

// Name returns the name given to NewStreamSink.
func (s *StreamSink) Name() string { return s.name }

// Write writes one line per event with a single Write call.
func (s *StreamSink) Write(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = s.buf[:0]
	for i := range events {
		b, err := lineOf(&events[i])
		if err != nil {
			return err
		}
		s.buf = append(append(s.buf, b...), '\n')
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("audit: %s sink: %w", s.name, err)
	}
	return nil
}

// Close does nothing: the writer belongs to the caller.
func (s *StreamSink) Close() error { return nil }

var _ Sink = (*StreamSink)(nil)
