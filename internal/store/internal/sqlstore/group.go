package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stint-dev/stint/internal/store"
)

// execer is what one write runs on: the writer pool when every write is its
// own transaction (PostgreSQL), or the connection holding a group commit's
// transaction (SQLite). *sql.DB and *sql.Conn both satisfy it.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writeFn is one store write. It may run several statements; under group
// commit a savepoint makes them one unit that succeeds or leaves no trace.
type writeFn func(ctx context.Context, ex execer) error

// GroupOptions tune group commit; the zero value is the default.
type GroupOptions struct {
	// Begin opens a batch's transaction (default "BEGIN"). SQLite uses
	// "BEGIN IMMEDIATE" so the write lock is taken up front.
	Begin string
	// Queue is how many writes may wait for the writer (default 1024).
	// Callers beyond it block, honouring their context: backpressure
	// rather than unbounded memory.
	Queue int
	// MaxBatch caps the writes in one transaction (default 512), which
	// bounds how long the write lock is held and how many callers one
	// failed commit fails.
	MaxBatch int
	// LazySync and DurableSync, when both set, are the statements that
	// switch the writer connection to commits without and back to commits
	// with a flush. A batch whose every write carries store.Lazy commits
	// between them (SQLite: synchronous NORMAL for the batch, FULL again
	// after). Unset: every batch is durable.
	LazySync, DurableSync string
	// CommitDelay bounds how long a busy writer waits to gather a batch
	// as large as its previous one before committing; 0 never waits.
	// Busy means the previous commit ended less than busyWindow ago. At
	// thousands of writes per second, durable commits back to back cost
	// more CPU (each writes every page the batch dirtied, then flushes)
	// than the wait costs latency. A lone caller, whose previous batch
	// was its own write, commits at once. It is PostgreSQL's
	// commit_delay, and what the audit file sink does before its fsync.
	CommitDelay time.Duration
}

// busyWindow is how recent the last commit must be for the writer to
// count as busy, and so to wait (CommitDelay) for a fuller batch.
const busyWindow = 2 * time.Millisecond

// GroupStats count group commit's work since the DB was opened.
type GroupStats struct {
	// Commits is the number of batch transactions committed.
	Commits uint64
	// LazyCommits counts those of Commits made without a flush (every
	// write in them carried store.Lazy).
	LazyCommits uint64
	// Writes is the number of writes run in committed batches (including
	// writes that failed on their own and were rolled back to their
	// savepoint, which happens only in batches of two or more).
	Writes uint64
	// Queued is the number of writes waiting for the writer now.
	Queued int
}

// ErrClosed is returned for a write submitted after Close began.
var ErrClosed = errors.New("store is closed")

// committer is the single writer goroutine of group commit. Callers queue
// their writes; the writer takes everything queued, runs it in one
// transaction with a savepoint per write, commits once (one fsync under
// synchronous=FULL) and only then answers each caller. The durable write
// rate so becomes commits/s × writes per commit instead of commits/s.
type committer struct {
	w        *sql.DB
	begin    string
	lazy     string // switches the connection to commits without a flush; "" never
	durable  string // switches it back
	maxBatch int
	queue    chan *request
	quit     chan struct{} // closed by close: accept nothing new
	stopped  chan struct{} // closed by run when it has finished
	once     sync.Once
	commits  atomic.Uint64
	lazies   atomic.Uint64 // of commits, those made without a flush
	writes   atomic.Uint64
	stmts    stmtCache // used by the writer goroutine only

	// delay is GroupOptions.CommitDelay; busy is busyWindow (tests widen
	// it); lastCommit is when the previous batch ended and lastBatch how
	// many writes it carried (used by the writer goroutine only). timer
	// is the delay's, reused.
	delay, busy time.Duration
	lastCommit  time.Time
	lastBatch   int
	timer       *time.Timer
	gathered    atomic.Int32 // writes taken into the batch gather is filling
}

// request is one queued write and where its outcome goes. done has room
// for the answer, so the writer never blocks on a caller that left.
type request struct {
	ctx  context.Context
	fn   writeFn
	done chan error
	lazy bool // the caller asked for store.Lazy
}

func newCommitter(w *sql.DB, o GroupOptions) *committer {
	if o.Begin == "" {
		o.Begin = "BEGIN"
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.LazySync == "" || o.DurableSync == "" {
		o.LazySync, o.DurableSync = "", ""
	}
	c := &committer{
		w:        w,
		begin:    o.Begin,
		lazy:     o.LazySync,
		durable:  o.DurableSync,
		maxBatch: o.MaxBatch,
		queue:    make(chan *request, o.Queue),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
		delay:    o.CommitDelay,
		busy:     busyWindow,
	}
	go c.run()
	return c
}

// do queues fn and waits until its batch has committed or failed.
//
// A caller whose context ends before its write was queued gets the
// context's error and the write certainly did not happen. One whose
// context ends while the write waits in the queue or runs also gets the
// context's error, but the write may still commit: like a network timeout,
// the caller then does not know, and must read to find out. The batch is
// unaffected either way: a write is skipped whole if its context ended
// before its turn, and otherwise runs to the end without its context's
// cancellation, so no statement is interrupted halfway.
func (c *committer) do(ctx context.Context, fn writeFn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &request{ctx: ctx, fn: fn, done: make(chan error, 1), lazy: store.IsLazy(ctx)}
	select {
	case <-c.quit:
		return ErrClosed
	default:
	}
	select {
	case c.queue <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("outcome unknown, the write may still commit: %w", ctx.Err())
	case <-c.stopped:
		// run answers before it stops, so an empty done means the
		// request was queued after the writer's last look: never run.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// run is the writer goroutine.
func (c *committer) run() {
	defer close(c.stopped)
	batch := make([]*request, 0, c.maxBatch)
	for {
		select {
		case req := <-c.queue:
			c.commit(append(batch[:0], req))
		case <-c.quit:
			// Finish what was accepted before Close.
			for len(c.queue) > 0 {
				c.commit(batch[:0])
			}
			return
		}
	}
}

// drain adds queued requests to batch without waiting, up to maxBatch.
func (c *committer) drain(batch []*request) []*request {
	for len(batch) < c.maxBatch {
		select {
		case req := <-c.queue:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commit takes the writer connection and only then drains the queue into
// batch, so writes that arrived while the connection was busy (the
// previous batch's fsync, a migration) join this batch.
func (c *committer) commit(batch []*request) {
	conn, err := c.w.Conn(context.Background())
	if err != nil {
		c.answer(batch, make([]error, len(batch)), fmt.Errorf("writer connection: %w", err))
		return
	}
	batch = c.drain(batch)
	if len(batch) == 0 {
		conn.Close()
		return
	}
	if c.delay > 0 && len(batch) < c.lastBatch && time.Since(c.lastCommit) < c.busy {
		batch = c.gather(batch, min(c.lastBatch, c.maxBatch))
	}
	defer func() { c.lastCommit, c.lastBatch = time.Now(), len(batch) }()
	errs := make([]error, len(batch))
	if c.lazy != "" && allLazy(batch) {
		c.answer(batch, errs, c.runLazy(conn, batch, errs))
		return
	}
	c.answer(batch, errs, c.runBatch(conn, batch, errs))
}

// gather waits until batch holds want writes, the commit delay passes or
// Close begins, then takes whatever else is queued.
func (c *committer) gather(batch []*request, want int) []*request {
	if c.timer == nil {
		c.timer = time.NewTimer(c.delay)
	} else {
		c.timer.Reset(c.delay) // Go ≥ 1.23: Reset drops any stale tick
	}
	defer c.timer.Stop()
	defer c.gathered.Store(0)
	for len(batch) < want {
		c.gathered.Store(int32(len(batch)))
		select {
		case req := <-c.queue:
			batch = append(batch, req)
		case <-c.timer.C:
			return c.drain(batch)
		case <-c.quit:
			return c.drain(batch)
		}
	}
	return c.drain(batch)
}

// pendingCount is how many writes wait for a commit: queued, or taken
// into the batch gather is filling.
func (c *committer) pendingCount() int { return len(c.queue) + int(c.gathered.Load()) }

// discard drops the writer's driver connection (the pool opens a fresh
// one with the DSN's settings), finalizing the statements cached on it
// first so that the closed connection's handle is not kept alive by them.
func (c *committer) discard(conn *sql.Conn) {
	_ = conn.Raw(func(dc any) error {
		if dc == c.stmts.conn {
			c.stmts.closeAll()
		}
		return driver.ErrBadConn
	})
}

// control runs the batch's own statements (BEGIN, COMMIT, the
// synchronous switches) through the statement cache too: parsing them on
// every commit was about a thirtieth of the server's CPU.
func (c *committer) control(conn *sql.Conn) cachedExecer { return cachedExecer{conn, &c.stmts} }

// allLazy reports whether no write in batch needs to be durable.
func allLazy(batch []*request) bool {
	for _, req := range batch {
		if !req.lazy {
			return false
		}
	}
	return true
}

// runLazy commits batch without a flush: it switches the connection to
// lazy commits, runs the batch, and switches back. A connection that
// cannot be switched back is discarded, so the pool opens a new one with
// the durable setting from its DSN; the batch itself has committed.
func (c *committer) runLazy(conn *sql.Conn, batch []*request, errs []error) error {
	ctx := context.Background()
	if _, err := c.control(conn).ExecContext(ctx, c.lazy); err != nil {
		return c.runBatch(conn, batch, errs) // durable is the safe way
	}
	err := c.runBatchOpen(conn, batch, errs)
	if _, rerr := c.control(conn).ExecContext(ctx, c.durable); rerr != nil {
		c.discard(conn)
	}
	conn.Close()
	if err == nil {
		c.lazies.Add(1)
	}
	return err
}

// answer tells each caller its outcome: its own error if its write failed
// or was skipped, else the batch's (nil when the commit succeeded).
func (c *committer) answer(batch []*request, errs []error, batchErr error) {
	for i, req := range batch {
		err := errs[i]
		if err == nil {
			err = batchErr
		}
		req.done <- err
		batch[i] = nil // drop the reference; batch's array is reused
	}
}

// runBatch runs batch in one transaction on conn and commits it, filling
// errs with each write's own error. It returns an error when nothing in
// the batch was committed.
func (c *committer) runBatch(conn *sql.Conn, batch []*request, errs []error) error {
	defer conn.Close()
	return c.runBatchOpen(conn, batch, errs)
}

// runBatchOpen is runBatch without closing conn.
func (c *committer) runBatchOpen(conn *sql.Conn, batch []*request, errs []error) (err error) {
	ctx := context.Background()
	defer func() {
		if err != nil {
			// The transaction may be open still (a failed COMMIT leaves
			// it so); if it cannot be rolled back, the connection is
			// discarded rather than reused mid-transaction.
			if _, rbErr := conn.ExecContext(ctx, "ROLLBACK"); rbErr != nil && !isNoTx(rbErr) {
				c.discard(conn)
			}
		}
	}()
	if _, err := c.control(conn).ExecContext(ctx, c.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if len(batch) == 1 {
		// Alone, the write's transaction is its savepoint: on failure
		// the deferred ROLLBACK undoes it, saving three statements on an
		// idle store.
		req := batch[0]
		if errs[0] = req.ctx.Err(); errs[0] == nil {
			errs[0] = req.fn(context.WithoutCancel(req.ctx), cachedExecer{conn, &c.stmts})
		}
		if errs[0] != nil {
			return errs[0]
		}
		if _, err := c.control(conn).ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		c.commits.Add(1)
		c.writes.Add(1)
		return nil
	}
	// Optimistically, every write runs without a savepoint of its own:
	// writes almost never fail alone (a duplicate lease id), and two
	// statements fewer per write is a quarter of a lease insert's cost.
	// If one does fail, the whole transaction is rolled back and the batch
	// runs again with a savepoint around each write.
	if ran, ok := c.runPlain(conn, batch, errs); ok {
		if _, err := c.control(conn).ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		c.commits.Add(1)
		c.writes.Add(uint64(ran))
		return nil
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil && !isNoTx(err) {
		return fmt.Errorf("roll back the optimistic batch: %w", err)
	}
	if _, err := c.control(conn).ExecContext(ctx, c.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	clear(errs)
	ran := 0
	for i, req := range batch {
		if err := req.ctx.Err(); err != nil {
			errs[i] = err // its caller has gone; skip it whole
			continue
		}
		if _, err := conn.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		ran++
		if errs[i] = req.fn(context.WithoutCancel(req.ctx), cachedExecer{conn, &c.stmts}); errs[i] != nil {
			// Undo only this write. If SQLite rolled the whole
			// transaction back (I/O error, disk full), the savepoint is
			// gone and the batch fails: earlier writes are lost too.
			if _, err := conn.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
				return fmt.Errorf("roll back to savepoint after %w: %w", errs[i], err)
			}
		}
		if _, err := conn.ExecContext(ctx, "RELEASE w"); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	if _, err := c.control(conn).ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	c.commits.Add(1)
	c.writes.Add(uint64(ran))
	return nil
}

// runPlain runs batch's writes one after another in the open transaction,
// skipping those whose caller has gone. It reports how many ran, and false
// as soon as one fails: the transaction then holds that write's partial
// work and must be rolled back.
func (c *committer) runPlain(conn *sql.Conn, batch []*request, errs []error) (int, bool) {
	ran := 0
	for i, req := range batch {
		if err := req.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if err := req.fn(context.WithoutCancel(req.ctx), cachedExecer{conn, &c.stmts}); err != nil {
			return ran, false
		}
		ran++
	}
	return ran, true
}

// isNoTx reports whether a ROLLBACK failed only because no transaction
// was open (SQLite had rolled it back already).
func isNoTx(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "no transaction is active")
}

// close stops accepting writes, lets the writer finish the queued ones,
// waits for it, and finalizes its cached statements.
func (c *committer) close() {
	c.once.Do(func() { close(c.quit) })
	<-c.stopped
	if len(c.stmts.stmts) == 0 {
		return
	}
	conn, err := c.w.Conn(context.Background())
	if err != nil {
		return // the pool is closed: the statements went with it
	}
	defer conn.Close()
	_ = conn.Raw(func(dc any) error {
		if dc == c.stmts.conn {
			c.stmts.closeAll()
		}
		return nil
	})
}

func (c *committer) stats() GroupStats {
	return GroupStats{Commits: c.commits.Load(), LazyCommits: c.lazies.Load(), Writes: c.writes.Load(), Queued: len(c.queue)}
}
