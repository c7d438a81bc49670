package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const defaultQueueSize = 16384

// batch is the set of events one Write call delivers; its callers wait on done.
type batch struct {
	done chan struct{}
	err  error
}

// queue is one sink's bounded pending list and its writer goroutine.
type queue struct {
	sink     Sink
	required bool
	filter   *Filter
	max      int
	logger   *slog.Logger

	label string // metrics label: sink type and index

	mu       sync.Mutex
	notEmpty sync.Cond
	room     chan struct{} // closed (and replaced) when the writer takes pending
	pending  []Event
	cur      *batch // the batch pending events will be written in
	closed   bool
	stopped  chan struct{}

	dropped  atomic.Uint64 // events dropped because the queue was full
	failures atomic.Uint64 // failed Write calls

	// delay is the sink's commit delay (see Committer); lastWrite is when
	// its last Write ended, to tell a busy sink from an idle one; lastBatch
	// is how many events that Write carried, the group a busy writer waits
	// to gather again before committing.
	delay     time.Duration
	lastWrite time.Time
	lastBatch int
}

// Committer is implemented by sinks whose Write ends in a costly commit
// (an fsync). When such a sink is busy — its previous Write ended less
// than busyWindow ago — and fewer events are pending than its previous
// Write carried, the writer waits up to CommitDelay for that many to
// gather, so that one commit carries more of them (PostgreSQL's
// commit_delay). It never waits once the group is complete: a lone caller,
// whose previous batch was its own events, commits at once. (A plain
// sleep would not do: Go's timers on Linux wake with about 1 ms
// granularity, so a 250 µs sleep costs every commit a millisecond.)
type Committer interface {
	CommitDelay() time.Duration
}

// busyWindow is how recent the last commit must be for a sink to count as busy.
const busyWindow = 2 * time.Millisecond

func newQueue(sc SinkConfig, logger *slog.Logger, label string) *queue {
	q := &queue{sink: sc.Sink, required: sc.Required, filter: sc.Filter, max: sc.QueueSize,
		logger: logger, label: label, stopped: make(chan struct{}), room: make(chan struct{})}
	if q.max <= 0 {
		q.max = defaultQueueSize
	}
	if c, ok := sc.Sink.(Committer); ok {
		q.delay = c.CommitDelay()
	}
	q.notEmpty.L = &q.mu
	return q
}

// waitRoom waits until n events fit (an empty queue takes any batch), the
// queue is closed, or ctx ends.
func (q *queue) waitRoom(ctx context.Context, n int) error {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 || len(q.pending)+n <= q.max || q.closed {
			q.mu.Unlock()
			return nil
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// depth returns the number of events waiting.
func (q *queue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// push queues evs and returns the batch they will be written in. A
// required sink's room was reserved (Log.reserve) so it never waits here; a
// best-effort sink drops evs when full and returns nil.
func (q *queue) push(evs []Event) *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	// A batch larger than the queue is still accepted into an empty queue,
	// or it could never be written.
	if !q.required && len(q.pending) > 0 && len(q.pending)+len(evs) > q.max {
		if n := q.dropped.Add(uint64(len(evs))); n == uint64(len(evs)) || n%1000 < uint64(len(evs)) {
			q.logger.Warn("audit: best-effort sink queue full, dropping events",
				"sink", q.sink.Name(), "first_seq", evs[0].Seq, "dropped_total", n)
		}
		return nil
	}
	if q.cur == nil {
		q.cur = &batch{done: make(chan struct{})}
	}
	q.pending = append(q.pending, evs...)
	q.notEmpty.Signal()
	return q.cur
}

// run is the writer: it takes everything pending, writes it in one call and
// wakes every caller of that batch.
func (q *queue) run() {
	defer close(q.stopped)
	for {
		q.mu.Lock()
		for len(q.pending) == 0 && !q.closed {
			q.notEmpty.Wait()
		}
		if len(q.pending) == 0 {
			q.mu.Unlock()
			return
		}
		if q.delay > 0 && !q.closed && len(q.pending) < q.lastBatch && time.Since(q.lastWrite) < busyWindow {
			q.gather()
		}
		evs, b := q.pending, q.cur
		q.pending, q.cur = nil, nil
		close(q.room)
		q.room = make(chan struct{})
		q.mu.Unlock()

		err := q.sink.Write(context.Background(), evs)
		q.lastWrite, q.lastBatch = time.Now(), len(evs)
		if err != nil {
			q.failures.Add(1)
			q.logger.Error("audit: sink write failed", "sink", q.sink.Name(),
				"required", q.required, "first_seq", evs[0].Seq, "last_seq", evs[len(evs)-1].Seq,
				"events", len(evs), "err", err)
			b.err = &SinkError{Sink: q.sink.Name(), FirstSeq: evs[0].Seq, LastSeq: evs[len(evs)-1].Seq, Err: err}
		}
		close(b.done)
	}
}

// gather waits, with q.mu held, until as many events are pending as the
// previous Write carried, the queue closes, or the commit delay passes.
func (q *queue) gather() {
	expired := false
	t := time.AfterFunc(q.delay, func() {
		q.mu.Lock()
		expired = true
		q.notEmpty.Broadcast()
		q.mu.Unlock()
	})
	for !expired && !q.closed && len(q.pending) < q.lastBatch {
		q.notEmpty.Wait()
	}
	t.Stop()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.notEmpty.Broadcast()
	close(q.room)
	q.room = make(chan struct{})
	q.mu.Unlock()
}

// SinkError reports that a sink failed to take events FirstSeq..LastSeq.
type SinkError struct {
	Sink              string
	FirstSeq, LastSeq uint64
	Err               error
}

func (e *SinkError) Error() string {
	return "audit: sink " + e.Sink + ": write seq " + uitoa(e.FirstSeq) + ".." + uitoa(e.LastSeq) + ": " + e.Err.Error()
}

// Unwrap returns the sink's error.
func (e *SinkError) Unwrap() error { return e.Err }
