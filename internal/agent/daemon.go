package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"

	"github.com/stint-dev/stint/client"
)

// DaemonOptions are the daemon's injected dependencies.
type DaemonOptions struct {
	Conn *Conn
	Log  *slog.Logger
	// Now defaults to time.Now; Rand to math/rand.
	Now  func() time.Time
	Rand Rand
	// RevokeTimeout bounds revocation at shutdown (default 10 s).
	RevokeTimeout time.Duration
	// OnHealthListen is called with the health endpoint's address.
	OnHealthListen func(addr string)
}

// Daemon is `stint agent`: it keeps every configured credential fetched,
// written to its sinks and renewed, and revokes them on shutdown.
type Daemon struct {
	cfg   *Config
	o     DaemonOptions
	slots []*slot

	mu     sync.Mutex // guards slot.held and slot.obtained, and the state file
	health net.Listener
}

// slot is one configured credential and what is held for it now.
type slot struct {
	cfg      CredentialConfig
	sinks    []*sink
	held     *Held
	obtained time.Time
	// maxed: renewal no longer extends the lease (max TTL reached).
	maxed bool
}

// NewDaemon compiles the config's sinks.
func NewDaemon(cfg *Config, o DaemonOptions) (*Daemon, error) {
	if o.Conn == nil {
		return nil, errors.New("agent: no connection")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RevokeTimeout <= 0 {
		o.RevokeTimeout = 10 * time.Second
	}
	d := &Daemon{cfg: cfg, o: o}
	for _, cc := range cfg.Credentials {
		s := &slot{cfg: cc}
		for _, sc := range cc.Sinks {
			sk, err := newSink(sc)
			if err != nil {
				return nil, err
			}
			s.sinks = append(s.sinks, sk)
		}
		d.slots = append(d.slots, s)
	}
	return d, nil
}

func (d *Daemon) spec(s *slot) Spec {
	sp := Spec{Target: s.cfg.Target, Role: s.cfg.Role, Name: s.cfg.Name, Scope: s.cfg.Scope}
	if s.cfg.TTL > 0 {
		sp.TTL = fmt.Sprintf("%ds", int64(s.cfg.TTL.D()/time.Second))
	}
	return sp
}

// Run keeps the credentials until ctx ends, then revokes them. It first
// settles the leases a previous run left in the state file.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.settle(ctx); err != nil {
		return err
	}
	if d.cfg.Health.Listen != "" {
		ln, err := net.Listen("tcp", d.cfg.Health.Listen)
		if err != nil {
			return fmt.Errorf("agent: health endpoint: %w", err)
		}
		d.health = ln
		srv := &http.Server{Handler: d, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		if d.o.OnHealthListen != nil {
			d.o.OnHealthListen(ln.Addr().String())
		}
	}
	var wg sync.WaitGroup
	for _, s := range d.slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.maintain(ctx, s)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	return d.shutdown()
}

// settle revokes or adopts the leases recorded by an earlier run.
func (d *Daemon) settle(ctx context.Context) error {
	if d.cfg.StateFile == "" {
		return nil
	}
	st, err := ReadState(d.cfg.StateFile)
	if err != nil {
		return err
	}
	var revoke []Held
	for _, sl := range st.Leases {
		h := sl.held()
		s := d.slotFor(h)
		if d.cfg.OnStart == "adopt" && s != nil && s.held == nil && d.adoptable(ctx, &h) {
			s.held, s.obtained = &h, d.o.Now()
			d.o.Log.Info("adopted lease", "credential", h.Name, "lease_id", h.Lease.LeaseID, "expires_at", h.Lease.ExpiresAt)
			continue
		}
		revoke = append(revoke, h)
	}
	for _, h := range revoke {
		if err := d.revoke(ctx, h); err != nil {
			// The lease expires on its own; the server's reaper cleans up.
			d.o.Log.Warn("could not revoke a lease from the previous run", "credential", h.Name, "lease_id", h.Lease.LeaseID, "expires_at", h.Lease.ExpiresAt, "err", err)
			continue
		}
		d.o.Log.Info("revoked lease from the previous run", "credential", h.Name, "lease_id", h.Lease.LeaseID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saveLocked()
}

func (d *Daemon) slotFor(h Held) *slot {
	for _, s := range d.slots {
		if s.cfg.Name == h.Name && s.cfg.Target == h.Target && s.cfg.Role == h.Role {
			return s
		}
	}
	return nil
}

// adoptable asks the server whether the lease is still active and far
// enough from expiry to be worth keeping.
func (d *Daemon) adoptable(ctx context.Context, h *Held) bool {
	l, err := d.o.Conn.Lease(ctx, h.Lease.LeaseID)
	if err != nil || l.State != "active" {
		return false
	}
	if l.ExpiresAt.Sub(d.o.Now()) <= d.cfg.Health.UnhealthyWithin.D() {
		return false
	}
	h.Lease.ExpiresAt = l.ExpiresAt
	return true
}

func (d *Daemon) revoke(ctx context.Context, h Held) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.RevokeTimeout)
	defer cancel()
	return d.o.Conn.Revoke(rctx, h.Lease.LeaseID)
}

// shutdown revokes every held lease and records what could not be revoked.
func (d *Daemon) shutdown() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var hs []Held
	for _, s := range d.slots {
		if s.held != nil {
			hs = append(hs, *s.held)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.o.RevokeTimeout)
	defer cancel()
	failed := map[string]bool{}
	var fmu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.o.Conn.Revoke(ctx, h.Lease.LeaseID); err != nil {
				d.o.Log.Warn("revoke at shutdown failed; kept in the state file", "credential", h.Name, "lease_id", h.Lease.LeaseID, "err", err)
				fmu.Lock()
				failed[h.Lease.LeaseID] = true
				fmu.Unlock()
				return
			}
			d.o.Log.Info("revoked", "credential", h.Name, "lease_id", h.Lease.LeaseID)
		}()
	}
	wg.Wait()
	// Keep failed ones in the state file so the next start retries them.
	for _, s := range d.slots {
		if s.held != nil && !failed[s.held.Lease.LeaseID] {
			s.held = nil
		}
	}
	return d.saveLocked()
}

func (d *Daemon) saveLocked() error {
	if d.cfg.StateFile == "" {
		return nil
	}
	var st State
	for _, s := range d.slots {
		if s.held != nil {
			st.Leases = append(st.Leases, stateLease(*s.held))
		}
	}
	return WriteState(d.cfg.StateFile, st)
}

// maintain keeps one credential: fetch, write, renew or re-fetch, retry
// with capped backoff while the server is away, until ctx ends.
func (d *Daemon) maintain(ctx context.Context, s *slot) {
	bo := Backoff{Initial: d.cfg.Retry.Initial.D(), Max: d.cfg.Retry.Max.D()}
	log := d.o.Log.With("credential", s.cfg.Name)
	d.mu.Lock()
	adopted := s.held
	d.mu.Unlock()
	if adopted != nil {
		d.install(ctx, s, *adopted, nil, log)
	}
	for {
		d.mu.Lock()
		held, obtained, maxed := s.held, s.obtained, s.maxed
		d.mu.Unlock()

		if held == nil {
			h, err := d.o.Conn.Fetch(ctx, d.spec(s))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				wait := bo.Next()
				log.Warn("fetch failed; retrying", "err", err, "retry_in", wait)
				if !sleepUntil(ctx, d.o.Now, d.o.Now().Add(wait)) {
					return
				}
				continue
			}
			bo.Reset()
			d.install(ctx, s, h, nil, log)
			continue
		}

		renew := held.Lease.Renewable && !maxed
		frac := RefetchFraction
		if renew {
			frac = RenewFraction
		}
		if !sleepUntil(ctx, d.o.Now, At(obtained, held.Lease.ExpiresAt, frac, d.o.Rand)) {
			return
		}
		if renew {
			d.renew(ctx, s, held, &bo, log)
		} else {
			d.refetch(ctx, s, held, &bo, log)
		}
	}
}

// renew extends the held lease, retrying while the server is away; a
// refusal (lease gone, expired) drops it so maintain fetches a new one.
func (d *Daemon) renew(ctx context.Context, s *slot, held *Held, bo *Backoff, log *slog.Logger) {
	for {
		l, err := d.o.Conn.Renew(ctx, held.Lease.LeaseID, d.spec(s).TTL)
		if err == nil {
			bo.Reset()
			d.mu.Lock()
			if !l.ExpiresAt.After(held.Lease.ExpiresAt) {
				s.maxed = true // re-fetch at 85 % from now on
				log.Info("lease reached its maximum lifetime; will fetch a new one", "lease_id", l.ID, "expires_at", l.ExpiresAt)
			}
			h := *held
			h.Lease.ExpiresAt = l.ExpiresAt
			s.held, s.obtained = &h, d.o.Now()
			d.mu.Unlock()
			log.Info("renewed", "lease_id", l.ID, "expires_at", l.ExpiresAt)
			d.install(ctx, s, h, nil, log)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !Retryable(err) {
			log.Warn("renewal refused; fetching a new credential", "lease_id", held.Lease.LeaseID, "err", err)
			d.drop(s, held)
			return
		}
		wait := bo.Next()
		if !d.o.Now().Add(wait).Before(held.Lease.ExpiresAt) {
			log.Warn("server unreachable and the credential expires; fetching a new one", "err", err)
			if !sleepUntil(ctx, d.o.Now, held.Lease.ExpiresAt) {
				return
			}
			d.drop(s, held)
			return
		}
		log.Warn("renewal failed; keeping the credential and retrying", "err", err, "retry_in", wait, "expires_at", held.Lease.ExpiresAt)
		if !sleepUntil(ctx, d.o.Now, d.o.Now().Add(wait)) {
			return
		}
	}
}

// refetch replaces a credential that cannot be renewed, keeping the old
// one until the new one is written, then revoking the old.
func (d *Daemon) refetch(ctx context.Context, s *slot, held *Held, bo *Backoff, log *slog.Logger) {
	for {
		h, err := d.o.Conn.Fetch(ctx, d.spec(s))
		if err == nil {
			bo.Reset()
			d.install(ctx, s, h, held, log)
			return
		}
		if ctx.Err() != nil {
			return
		}
		wait := bo.Next()
		if !d.o.Now().Add(wait).Before(held.Lease.ExpiresAt) {
			if !sleepUntil(ctx, d.o.Now, held.Lease.ExpiresAt) {
				return
			}
			log.Warn("credential expired before a new one could be fetched", "err", err)
			d.drop(s, held)
			return
		}
		log.Warn("re-fetch failed; keeping the current credential and retrying", "err", err, "retry_in", wait, "expires_at", held.Lease.ExpiresAt)
		if !sleepUntil(ctx, d.o.Now, d.o.Now().Add(wait)) {
			return
		}
	}
}

func (d *Daemon) drop(s *slot, held *Held) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.held == held || (s.held != nil && s.held.Lease.LeaseID == held.Lease.LeaseID) {
		s.held, s.maxed = nil, false
		if err := d.saveLocked(); err != nil {
			d.o.Log.Warn("state file", "err", err)
		}
	}
}

// install makes h the slot's credential: records it, writes its sinks,
// runs the command if any sink changed, and revokes old (if any).
func (d *Daemon) install(ctx context.Context, s *slot, h Held, old *Held, log *slog.Logger) {
	d.mu.Lock()
	if old != nil || s.held == nil || s.held.Lease.LeaseID != h.Lease.LeaseID {
		s.maxed = false
		s.obtained = d.o.Now()
		log.Info("fetched", "lease_id", h.Lease.LeaseID, "expires_at", h.Lease.ExpiresAt, "renewable", h.Lease.Renewable)
	}
	s.held = &h
	if err := d.saveLocked(); err != nil {
		log.Warn("state file", "err", err)
	}
	d.mu.Unlock()

	changed := false
	for _, sk := range s.sinks {
		c, err := sk.write(h)
		if err != nil {
			log.Error("sink", "err", err)
			continue
		}
		changed = changed || c
	}
	if changed && len(s.cfg.Command) > 0 {
		d.runCommand(ctx, s, log)
	}
	if old != nil && old.Lease.LeaseID != h.Lease.LeaseID {
		if err := d.revoke(ctx, *old); err != nil {
			log.Warn("revoke of the replaced lease failed; it expires on its own", "lease_id", old.Lease.LeaseID, "err", err)
		}
	}
}

func (d *Daemon) runCommand(ctx context.Context, s *slot, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CommandTimeout.D())
	defer cancel()
	cmd := exec.CommandContext(cctx, s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), "STINT_CREDENTIAL="+s.cfg.Name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The output is not logged: reload scripts often echo the
		// credential they just read.
		log.Warn("command after change failed", "command", s.cfg.Command[0], "err", err, "output_bytes", len(out))
		return
	}
	log.Info("command after change ran", "command", s.cfg.Command[0])
}

// HealthStatus is the health endpoint's body.
type HealthStatus struct {
	Healthy     bool               `json:"healthy"`
	Credentials []CredentialHealth `json:"credentials"`
}

// CredentialHealth is one credential's state on the health endpoint.
type CredentialHealth struct {
	Name      string    `json:"name"`
	LeaseID   string    `json:"lease_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Status is ok, expiring (within health.unhealthy_within) or missing.
	Status string `json:"status"`
}

// Health reports the credentials' state. It is unhealthy only when a
// credential is missing or about to expire — an unreachable server alone
// is not a reason while the credentials held are still good.
func (d *Daemon) Health() HealthStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	hs := HealthStatus{Healthy: true}
	now := d.o.Now()
	for _, s := range d.slots {
		ch := CredentialHealth{Name: s.cfg.Name, Status: "ok"}
		switch {
		case s.held == nil:
			ch.Status = "missing"
		case s.held.Lease.ExpiresAt.Sub(now) <= d.cfg.Health.UnhealthyWithin.D():
			ch.Status = "expiring"
		}
		if s.held != nil {
			ch.LeaseID, ch.ExpiresAt = s.held.Lease.LeaseID, s.held.Lease.ExpiresAt
		}
		if ch.Status != "ok" {
			hs.Healthy = false
		}
		hs.Credentials = append(hs.Credentials, ch)
	}
	sort.Slice(hs.Credentials, func(i, j int) bool { return hs.Credentials[i].Name < hs.Credentials[j].Name })
	return hs
}

// ServeHTTP serves GET /healthz: 200 when healthy, 503 otherwise.
func (d *Daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" {
		http.NotFound(w, r)
		return
	}
	hs := d.Health()
	w.Header().Set("Content-Type", "application/json")
	if !hs.Healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(hs)
}

// Held returns a copy of the credential held under name, if any.
func (d *Daemon) Held(name string) (client.Credential, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.slots {
		if s.cfg.Name == name && s.held != nil {
			return s.held.Lease, true
		}
	}
	return client.Credential{}, false
}

var _ http.Handler = (*Daemon)(nil)
