package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: log is closed")

// SinkConfig is one sink of a Log and whether issuance depends on it.
type SinkConfig struct {
	Sink Sink
	// Required sinks must have every event durably before Record returns;
	// their failure fails Record (fail closed), and while their queue is
	// full Record waits (within its context) before it assigns a seq.
	// Best-effort sinks never block the caller: when their queue is full,
	// events for them are dropped and counted.
	Required bool
	// Filter, when set, selects the events this sink receives. A filtered
	// record has gaps in Seq and cannot be verified as a chain on its own.
	Filter *Filter
	// QueueSize bounds the events waiting for this sink; 0 means 16384.
	QueueSize int
}

// Options configures a Log.
type Options struct {
	Sinks []SinkConfig
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resume is the last event of an existing record (see LastEvent): the Log
	// continues its Seq and hash chain. Nil starts a new record at Seq 1.
	Resume *Event
	// Logger receives sink failures and drops; nil means slog.Default().
	Logger *slog.Logger
	// FingerprintKey keys Fingerprint. Nil means a random key, so
	// fingerprints then only correlate within one process lifetime.
	FingerprintKey []byte

	// CheckpointKey, when set, makes the Log append a signed audit.checkpoint
	// event every CheckpointEvery events and every CheckpointInterval (when
	// events were recorded since the last checkpoint), and one on Close.
	CheckpointKey ed25519.PrivateKey
	// CheckpointEvery is the event count between checkpoints; 0 means 1000.
	CheckpointEvery int
	// CheckpointInterval is the longest time between checkpoints; 0 means
	// one minute.
	CheckpointInterval time.Duration

	// Registerer, when set, gets the Log's metrics (see docs/audit.md):
	// events recorded by type and outcome, per-sink write failures, queue
	// drops, queue depth and spool state, gap events and checkpoints. Sinks
	// are labelled by type and index ("http-1"), never by address.
	Registerer prometheus.Registerer
}

// Log assigns each event its place in the hash chain and fans it out to the
// sinks, one writer goroutine per sink (group commit: a writer takes every
// pending event, writes them with one Write call, and wakes all their
// callers at once).
type Log struct {
	now    func() time.Time
	logger *slog.Logger
	fpKey  []byte

	// sem (a one-slot semaphore, so that waiting for it respects a
	// context) orders seq assignment and queueing; mu guards the fields
	// below for readers that do not take sem.
	sem    chan struct{}
	mu     sync.Mutex
	closed bool
	seq    uint64 // last assigned
	prev   string // hash of the last assigned event
	queues []*queue

	ckpt      *checkpointer
	metrics   *metrics
	closeOnce sync.Once
	closeErr  error
}

// NewLog starts a Log and its sink writers.
func NewLog(o Options) (*Log, error) {
	if len(o.Sinks) == 0 {
		return nil, errors.New("audit: no sinks configured")
	}
	l := &Log{now: o.Now, logger: o.Logger, fpKey: o.FingerprintKey, prev: GenesisHash, sem: make(chan struct{}, 1)}
	if l.now == nil {
		l.now = time.Now
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	if len(l.fpKey) == 0 {
		l.fpKey = make([]byte, 32)
		if _, err := rand.Read(l.fpKey); err != nil {
			return nil, fmt.Errorf("audit: fingerprint key: %w", err)
		}
	}
	if r := o.Resume; r != nil {
		if r.Seq == 0 || len(r.Hash) != 64 {
			return nil, fmt.Errorf("audit: resume event has seq %d and hash %q: not a chained event", r.Seq, r.Hash)
		}
		l.seq, l.prev = r.Seq, r.Hash
	}
	for i, sc := range o.Sinks {
		if sc.Sink == nil {
			return nil, fmt.Errorf("audit: sink %d is nil", i)
		}
		l.queues = append(l.queues, newQueue(sc, l.logger, sinkLabel(sc.Sink, i)))
	}
	l.metrics = newMetrics(l)
	if o.Registerer != nil {
		if err := l.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("audit: metrics: %w", err)
		}
	}
	if o.CheckpointKey != nil {
		c, err := newCheckpointer(l, o)
		if err != nil {
			return nil, err
		}
		l.ckpt = c
	}
	for _, q := range l.queues {
		go q.run()
	}
	if l.ckpt != nil {
		go l.ckpt.run()
	}
	return l, nil
}

// Record chains e and delivers it to every sink; it returns when every
// required sink has it durably. It implements Recorder.
func (l *Log) Record(ctx context.Context, e Event) error {
	return l.RecordAll(ctx, e)
}

// RecordAll chains events in order (consecutive Seq) and delivers them as
// Record does. Seq, Time, ID, PrevHash and Hash are assigned here; values the
// caller set in them are overwritten. An error from a required sink fails the
// call; the events keep their Seq, so that sink's record then shows a gap
// that Verify reports.
func (l *Log) RecordAll(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	evs := make([]Event, len(events), len(events)+1)
	copy(evs, events)
	for i := range evs {
		if evs[i].Type == "" {
			return errors.New("audit: event without a type")
		}
		if err := normalize(&evs[i]); err != nil {
			return err
		}
		// An ID is random, not a chain position: drawn here, outside the
		// log's lock (chain keeps it).
		evs[i].ID = uuid.NewString()
	}
	batches, err := l.append(ctx, evs)
	if err != nil {
		return err
	}
	return l.wait(ctx, batches)
}

// append assigns chain positions and queues evs for every sink, in one
// critical section so that all sinks see the same order. It waits, within
// ctx, for its turn and for room in every required sink's queue before it
// assigns anything, so a caller that gives up leaves no trace in the chain.
func (l *Log) append(ctx context.Context, evs []Event) ([]*batch, error) {
	if err := l.lock(ctx); err != nil {
		return nil, err
	}
	defer l.unlock()
	if l.isClosed() {
		return nil, ErrClosed
	}
	room := len(evs)
	if l.ckpt != nil {
		room++ // a checkpoint may follow
	}
	if err := l.reserve(ctx, room); err != nil {
		return nil, err
	}
	seq, prev := l.seq, l.prev
	var memo actorMemo // the events of a request share their principal
	for i := range evs {
		var err error
		if seq, prev, err = l.chain(&evs[i], seq, prev, &memo); err != nil {
			return nil, err
		}
	}
	if l.ckpt != nil && l.ckpt.count(len(evs)) {
		cp := l.ckpt.build(seq, prev)
		var err error
		if seq, prev, err = l.chain(&cp, seq, prev, nil); err != nil {
			return nil, err
		}
		evs = append(evs, cp)
		l.ckpt.reset()
	}
	l.setHead(seq, prev)
	return l.enqueue(evs), nil
}

// lock takes the append semaphore, or gives up when ctx ends.
func (l *Log) lock(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: waiting for the log: %w", ctx.Err())
	}
}

func (l *Log) unlock() { <-l.sem }

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Log) setHead(seq uint64, prev string) {
	l.mu.Lock()
	l.seq, l.prev = seq, prev
	l.mu.Unlock()
}

// reserve waits until every required queue can take n more events. Only
// the holder of sem adds to queues, so room found stays. Caller holds sem.
func (l *Log) reserve(ctx context.Context, n int) error {
	for _, q := range l.queues {
		if q.required {
			if err := q.waitRoom(ctx, n); err != nil {
				return fmt.Errorf("audit: waiting for sink %s: %w", q.sink.Name(), err)
			}
		}
	}
	return nil
}

// chain gives e the position after (seq, prev) and returns e's position.
// It gives e an ID unless e has one (RecordAll draws them before it takes
// the lock). memo (nil for none) carries the actors encoded for earlier
// events of the same call.
func (l *Log) chain(e *Event, seq uint64, prev string, memo *actorMemo) (uint64, string, error) {
	e.Seq, e.PrevHash, e.Hash = seq+1, prev, ""
	e.Time = l.now().UTC()
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	b, err := encodeEvent(e, memo)
	if err != nil {
		return seq, prev, err
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	e.Hash = h
	e.line = spliceHash(b, h)
	return e.Seq, h, nil
}

// enqueue hands evs to every sink and counts them. Caller holds l.sem,
// after reserve.
func (l *Log) enqueue(evs []Event) []*batch {
	l.metrics.recorded(evs)
	var batches []*batch
	for _, q := range l.queues {
		sel := evs
		if q.filter != nil {
			sel = q.filter.Select(evs)
			if len(sel) == 0 {
				continue
			}
		}
		b := q.push(sel)
		if b != nil && q.required {
			batches = append(batches, b)
		}
	}
	return batches
}

func (l *Log) wait(ctx context.Context, batches []*batch) error {
	var errs []error
	for _, b := range batches {
		select {
		case <-b.done:
			if b.err != nil {
				errs = append(errs, b.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("audit: waiting for sinks: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// Head returns the Seq and Hash of the last event assigned, so that a caller
// can keep a known head elsewhere (see VerifyOptions.Head).
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.prev
}

// Fingerprint returns a keyed, non-reversible fingerprint of a secret for
// correlation in audit events: "hmac-sha256:" followed by the unpadded
// base64url of the first 128 bits of HMAC-SHA256(FingerprintKey, secret).
func (l *Log) Fingerprint(secret string) string {
	m := hmac.New(sha256.New, l.fpKey)
	m.Write([]byte(secret))
	return "hmac-sha256:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Close writes a final checkpoint (when checkpoints are on), drains every
// sink queue, and closes the sinks. Record after Close returns ErrClosed.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		if l.ckpt != nil {
			l.ckpt.stop()
			if err := l.ckpt.seal(context.Background()); err != nil {
				l.closeErr = err
			}
		}
		// Under sem, so that no append is between its check and its queueing.
		l.sem <- struct{}{}
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.unlock()
		errs := []error{l.closeErr}
		for _, q := range l.queues {
			q.close()
		}
		for _, q := range l.queues {
			<-q.stopped
			if err := q.sink.Close(); err != nil {
				errs = append(errs, fmt.Errorf("audit: close sink %s: %w", q.sink.Name(), err))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

var _ Recorder = (*Log)(nil)
