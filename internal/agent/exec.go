package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/stint-dev/stint/client"
)

// ForwardedSignals are passed on to the child of `stint exec`.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// ExecOptions configure one `stint exec` run.
type ExecOptions struct {
	Conn  *Conn
	Creds []Spec
	Env   []EnvOverride
	// Command is the program and its arguments.
	Command []string
	Stdin   io.Reader
	Stdout  io.Writer
	// Stderr receives the child's stderr and stint's own notices.
	Stderr io.Writer
	// BaseEnv is the environment the credentials are added to (default os.Environ()).
	BaseEnv []string
	// Now defaults to time.Now; Rand to math/rand.
	Now  func() time.Time
	Rand Rand
	// RevokeTimeout bounds revocation at exit (default 10 s).
	RevokeTimeout time.Duration
	// OnRenew is called after each successful renewal (tests observe it).
	OnRenew func(name string, l client.Lease)
}

// FetchError means a credential could not be obtained, so the child was
// never started.
type FetchError struct {
	Spec Spec
	Err  error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("exec: cannot get %s/%s, not starting the command: %v", e.Spec.Target, e.Spec.Role, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// Exec fetches every credential, runs the command with them in its
// environment, renews them while it runs, and revokes them all when it
// ends — by its own exit or a signal to stint, which is forwarded to it.
// It returns the child's exit code (128+N when a signal N killed it).
// If any credential cannot be fetched, the ones already fetched are
// revoked and the command is not started.
func Exec(ctx context.Context, o ExecOptions) (int, error) {
	if len(o.Command) == 0 {
		return 0, errors.New("exec: no command given (after --)")
	}
	if len(o.Creds) == 0 {
		return 0, errors.New("exec: no --cred given")
	}
	seen := map[string]bool{}
	for _, s := range o.Creds {
		if seen[s.Name] {
			return 0, fmt.Errorf("exec: two credentials are named %q: give one a name with TARGET/ROLE:NAME", s.Name)
		}
		seen[s.Name] = true
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	stderr := o.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	path, err := exec.LookPath(o.Command[0])
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}

	// Revocation must outlive a cancelled ctx (SIGTERM cancels it).
	bg := context.WithoutCancel(ctx)
	held, err := fetchAll(ctx, o.Conn, o.Creds)
	revokeAll := func(hs []Held) {
		rctx, cancel := context.WithTimeout(bg, cmp(o.RevokeTimeout, 10*time.Second))
		defer cancel()
		for _, e := range revokeEach(rctx, o.Conn, hs) {
			fmt.Fprintf(stderr, "stint: warning: %v\n", e)
		}
	}
	if err != nil {
		revokeAll(held)
		return 0, err
	}
	add, err := Env(held, o.Env)
	if err != nil {
		revokeAll(held)
		return 0, err
	}
	base := o.BaseEnv
	if base == nil {
		base = os.Environ()
	}

	cmd := exec.Command(path, o.Command[1:]...)
	cmd.Args[0] = o.Command[0]
	cmd.Env = MergeEnv(base, add)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, stderr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, ForwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		revokeAll(held)
		return 0, fmt.Errorf("exec: start %s: %w", o.Command[0], err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()

	rctx, stopRenew := context.WithCancel(bg)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards held[i].Lease.ExpiresAt against concurrent reads at exit
	for i := range held {
		if !held[i].Lease.Renewable {
			continue
		}
		wg.Add(1)
		go func(h *Held) {
			defer wg.Done()
			keepRenewed(rctx, o.Conn, h, &mu, now, o.Rand, stderr, o.OnRenew)
		}(&held[i])
	}

	werr := cmd.Wait()
	close(done)
	stopRenew()
	wg.Wait()
	revokeAll(held)
	return exitCode(cmd.ProcessState, werr)
}

func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func fetchAll(ctx context.Context, c *Conn, specs []Spec) ([]Held, error) {
	held := make([]Held, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i], errs[i] = c.Fetch(ctx, s)
		}()
	}
	wg.Wait()
	var got []Held
	var first error
	for i := range specs {
		if errs[i] != nil {
			if first == nil {
				first = &FetchError{Spec: specs[i], Err: errs[i]}
			}
			continue
		}
		got = append(got, held[i])
	}
	if first != nil {
		return got, first
	}
	return held, nil
}

// revokeEach revokes every lease, concurrently, and returns the failures.
func revokeEach(ctx context.Context, c *Conn, hs []Held) []error {
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Revoke(ctx, h.Lease.LeaseID); err != nil {
				errs[i] = fmt.Errorf("revoke %s (lease %s): %w; it expires at %s", h.Name, h.Lease.LeaseID, err, h.Lease.ExpiresAt.UTC().Format(time.RFC3339))
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// keepRenewed renews one lease at two thirds of its remaining life until
// ctx ends, the server refuses, or the lease reaches its maximum TTL.
func keepRenewed(ctx context.Context, c *Conn, h *Held, mu *sync.Mutex, now func() time.Time, r Rand, stderr io.Writer, onRenew func(string, client.Lease)) {
	from := now()
	mu.Lock()
	until := h.Lease.ExpiresAt
	mu.Unlock()
	var bo Backoff
	next := At(from, until, RenewFraction, r)
	for {
		if !sleepUntil(ctx, now, next) {
			return
		}
		l, err := c.Renew(ctx, h.Lease.LeaseID, "")
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !Retryable(err) {
				fmt.Fprintf(stderr, "stint: warning: renew %s: %v; it expires at %s\n", h.Name, err, until.UTC().Format(time.RFC3339))
				return
			}
			d := bo.Next()
			next = now().Add(d)
			if !next.Before(until) {
				fmt.Fprintf(stderr, "stint: warning: renew %s: %v; giving up, it expires at %s\n", h.Name, err, until.UTC().Format(time.RFC3339))
				return
			}
			continue
		}
		bo.Reset()
		if onRenew != nil {
			onRenew(h.Name, l)
		}
		if !l.ExpiresAt.After(until) {
			// The lease reached its maximum TTL: nothing more to renew.
			fmt.Fprintf(stderr, "stint: notice: %s reached its maximum lifetime; it expires at %s\n", h.Name, l.ExpiresAt.UTC().Format(time.RFC3339))
			return
		}
		from, until = now(), l.ExpiresAt
		mu.Lock()
		h.Lease.ExpiresAt = until
		mu.Unlock()
		next = At(from, until, RenewFraction, r)
	}
}

// sleepUntil waits for t or ctx; it reports whether t came.
func sleepUntil(ctx context.Context, now func() time.Time, t time.Time) bool {
	d := t.Sub(now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// exitCode maps how the child ended to stint's exit code.
func exitCode(ps *os.ProcessState, err error) (int, error) {
	if ps == nil {
		return 0, fmt.Errorf("exec: wait: %w", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ps.ExitCode(), nil
}
