package lease

import (
	"sync"

	"github.com/stint-dev/stint/internal/core"
)

// job is one claimed revocation.
type job struct {
	lease  core.Lease
	reason string
}

// queue is an unbounded FIFO of jobs for one target. It is unbounded so the
// reaper never blocks on a slow target; its length is bounded in practice
// by the reaper's batch size and the claims in the store.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	jobs   []job
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(j job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.jobs = append(q.jobs, j)
	q.cond.Signal()
	return true
}

// pop blocks until a job is queued or the queue is closed.
func (q *queue) pop() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return job{}, false
	}
	j := q.jobs[0]
	q.jobs[0] = job{}
	q.jobs = q.jobs[1:]
	return j, true
}

// close stops the workers and returns the jobs that never started.
func (q *queue) close() []job {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	rest := q.jobs
	q.jobs = nil
	q.cond.Broadcast()
	return rest
}
