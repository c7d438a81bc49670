// Package app is stint's composition root: it turns a validated config
// into a running server, wiring every implementation listed in builtins.go.
package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/identity/jwtidp"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/lease"
	"github.com/stint-dev/stint/internal/policy"
	"github.com/stint-dev/stint/internal/proxy"
	"github.com/stint-dev/stint/internal/server"
	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/postgres"
	"github.com/stint-dev/stint/internal/store/sqlite"
)

// Check validates cfg fully without starting anything: structure, known
// types and policy compilation. Every problem is reported with file:line.
func Check(cfg *config.Config) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, p := range cfg.IdentityProviders {
		if _, ok := identityTypes[p.Type]; p.Type != "" && !ok {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("identity_providers[%d].type", i), "unknown type %q (known: %s)", p.Type, names(identityTypes)))
		}
	}
	for i, t := range cfg.Targets {
		if _, ok := targetTypes[t.Type]; t.Type != "" && !ok {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("targets[%d].type", i), "unknown type %q (known: %s)", t.Type, names(targetTypes)))
		}
	}
	if len(cfg.Audit.Sinks) == 0 {
		// No audit record is not a mode stint runs in.
		errs = append(errs, cfg.Errorf("audit.sinks", "at least one audit sink is required, e.g. { type: file, path: /var/log/stint/audit.jsonl }"))
	}
	for i, s := range cfg.Audit.Sinks {
		if _, ok := sinkTypes[s.Type]; s.Type != "" && !ok {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("audit.sinks[%d].type", i), "unknown type %q (known: %s)", s.Type, names(sinkTypes)))
		}
	}
	if _, err := compilePolicy(cfg); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// compilePolicy compiles the rules, mapping each problem to its line.
func compilePolicy(cfg *config.Config) (*policy.Engine, error) {
	rules := make([]policy.Rule, len(cfg.Policies))
	for i, p := range cfg.Policies {
		rules[i] = policy.Rule{Name: p.Name, Grants: p.Grants, When: p.When, MaxTTL: p.MaxTTL.D(), Deny: p.Deny, Constraints: p.Constraints}
	}
	eng, err := policy.Compile(rules)
	if err == nil {
		return eng, nil
	}
	var out []error
	for _, e := range unjoin(err) {
		var ce *policy.CompileError
		if errors.As(e, &ce) {
			out = append(out, cfg.Errorf(fmt.Sprintf("policies[%d].%s", ce.Index, ce.Field), "%v", ce.Err))
			continue
		}
		out = append(out, e)
	}
	return nil, errors.Join(out...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Options are the process-level dependencies.
type Options struct {
	Logger     *slog.Logger
	HTTPClient *http.Client
	Now        func() time.Time
	// LeaseHooks are for crash tests only.
	LeaseHooks *lease.TestHooks
}

// App is a wired stint server.
type App struct {
	Config   *config.Config
	Store    store.Store
	Keys     *keys.Manager
	Audit    *audit.Log
	Broker   *broker.Broker
	Leases   *lease.Manager
	Server   *server.Server
	Proxy    *proxy.Handler // serves /proxy/{target}/… for http targets
	Registry *prometheus.Registry
	Logger   *slog.Logger
	closers  []func() error
	// auditFiles are reopened on SIGHUP (ReopenAudit).
	auditFiles []*audit.FileSink
}

// ReopenAudit reopens every audit file sink, after an external rotation
// renamed the files (logrotate's postrotate sends SIGHUP).
func (a *App) ReopenAudit() error {
	var errs []error
	for _, f := range a.auditFiles {
		errs = append(errs, f.Reopen())
	}
	return errors.Join(errs...)
}

// New wires an App from a checked config. It opens the store, the KEK and
// the keys, and fails with a clear error when any of them is wrong.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *App, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if err := Check(cfg); err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Logger: o.Logger, Registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.Store, err = OpenStore(ctx, cfg.Server.Store); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Store.Close)
	sealer, err := keys.OpenSealer(ctx, a.Store, cfg.Server.KEKFile)
	if err != nil {
		return nil, err
	}
	a.Keys, err = keys.NewManager(ctx, a.Store, sealer, keys.Options{
		Algorithm: cfg.Server.SigningAlgorithm, Now: o.Now, TokenMaxTTL: maxTokenTTL(cfg), Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { a.Keys.Close(); return nil })

	if a.Audit, a.auditFiles, err = openAudit(ctx, cfg, a.Keys, o, a.Registry); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Audit.Close)

	jwksRefresh := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stint_jwks_refreshes_total", Help: "JWKS loads by outcome.",
	}, []string{"outcome"})
	a.Registry.MustRegister(jwksRefresh)
	d := deps{HTTPClient: o.HTTPClient, Now: o.Now, IssuerURL: cfg.Server.IssuerURL, Signer: a.Keys, Keys: a.Keys, Store: a.Store,
		OnRefresh: func(_ string, err error) {
			if err != nil {
				jwksRefresh.WithLabelValues("failure").Inc()
				return
			}
			jwksRefresh.WithLabelValues("success").Inc()
		}}

	router, err := buildIdentities(ctx, cfg, d, a.Keys)
	if err != nil {
		return nil, err
	}
	targets, issuers, types, err := buildTargets(ctx, cfg, d)
	for _, is := range issuers {
		if c, ok := is.(interface{ Close() }); ok {
			a.closers = append(a.closers, func() error { c.Close(); return nil })
		}
	}
	if err != nil {
		return nil, err
	}
	eng, err := compilePolicy(cfg)
	if err != nil {
		return nil, err
	}
	a.Leases, err = lease.New(lease.Options{
		Store: a.Store, Issuers: issuers, TargetTypes: types, Sealer: sealer, Audit: a.Audit, Now: o.Now,
		Logger: o.Logger, Registerer: a.Registry, MaxAttempts: cfg.Leases.MaxAttempts,
		MaxBackoff: cfg.Leases.MaxBackoff.D(), FailedRetry: cfg.Leases.FailedRetry.D(), Retention: cfg.Leases.Retention.Or(config.DefaultLeaseRetention),
		Limits: lease.Limits{PerPrincipal: cfg.Leases.MaxActivePerPrincipal, PerRole: cfg.Leases.MaxActivePerRole}, Hooks: o.LeaseHooks,
	})
	if err != nil {
		return nil, err
	}
	a.Broker, err = broker.New(broker.Options{
		IssuerURL: cfg.Server.IssuerURL, Identities: identity.NewCache(router, cfg.Server.VerifiedTokenCache.D(), o.Now), Policy: eng, Targets: targets,
		Leases: leaseAdapter{a.Leases}, Signer: a.Keys, Audit: a.Audit, Fingerprint: a.Audit.Fingerprint,
		SessionTTL: cfg.Server.SessionTTL.D(), Now: o.Now, Logger: o.Logger, Metrics: broker.NewMetrics(a.Registry),
		AuditFile: auditFile(cfg), Inventory: a.Store,
	})
	if err != nil {
		return nil, err
	}
	if a.Proxy, err = buildProxy(cfg, a, sealer, o); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { a.Proxy.Close(); return nil })
	a.Server = server.New(server.Options{
		Broker: a.Broker, Keys: a.Keys, IssuerURL: cfg.Server.IssuerURL, MaxRequestBytes: cfg.Server.MaxRequestBytes,
		AuthFailuresPerMinute: cfg.Server.AuthFailuresPerMinute,
		Logger:                o.Logger, Gatherer: a.Registry, Registerer: a.Registry, Extra: withCertRoutes(a.Proxy.Routes(), issuers, o.Logger),
		MaxInventoryBytes: cfg.Server.MaxInventoryBytes,
		Ready: func(ctx context.Context) error {
			_, err := a.Store.GetMeta(ctx, "kek_check")
			return err
		},
	})
	return a, nil
}

// auditFile is the local record: the first unfiltered file sink.
func auditFile(cfg *config.Config) string {
	for _, s := range cfg.Audit.Sinks {
		if s.Type == "file" && len(s.Types) == 0 && len(s.Outcomes) == 0 {
			return s.Path
		}
	}
	return ""
}

// maxTokenTTL is the longest any token lives: how long a retired signing
// key must stay published.
func maxTokenTTL(cfg *config.Config) time.Duration {
	m := cfg.Server.SessionTTL.D()
	for _, t := range cfg.Targets {
		for _, r := range t.Roles {
			m = max(m, r.DefaultTTL.D())
		}
	}
	for _, p := range cfg.Policies {
		m = max(m, p.MaxTTL.D())
	}
	return m
}

// OpenStore opens and migrates the store a URL names.
func OpenStore(ctx context.Context, url string) (store.Store, error) {
	var st store.Store
	if config.IsPostgres(url) {
		s, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		st = s
	} else {
		path, ok := config.SQLitePath(url)
		if !ok {
			return nil, fmt.Errorf("store: unsupported URL")
		}
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, err
		}
		st = s
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	return st, nil
}

func openAudit(ctx context.Context, cfg *config.Config, km *keys.Manager, o Options, reg prometheus.Registerer) (*audit.Log, []*audit.FileSink, error) {
	var files []*audit.FileSink
	fp, err := km.Secret(ctx, "audit-fingerprint")
	if err != nil {
		return nil, nil, err
	}
	signer, err := km.Signer(ctx, "audit-checkpoint", "ed25519")
	if err != nil {
		return nil, nil, err
	}
	ck, _ := signer.(ed25519.PrivateKey)
	var sinks []audit.SinkConfig
	resume, err := spoolResume(cfg)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range cfg.Audit.Sinks {
		sk, err := sinkTypes[s.Type](s, o.Logger)
		if fs, ok := sk.(*audit.FileSink); ok {
			files = append(files, fs)
		}
		if err != nil {
			return nil, nil, cfg.Errorf(fmt.Sprintf("audit.sinks[%d]", i), "%v", err)
		}
		if s.Type == "file" && resume == nil && len(s.Types) == 0 && len(s.Outcomes) == 0 {
			if resume, err = audit.LastEventOfRecord(s.Path); err != nil {
				var torn *audit.TornTailError
				if !errors.As(err, &torn) {
					return nil, nil, fmt.Errorf("audit: resume %s: %w", s.Path, err)
				}
				o.Logger.Warn("audit file had a torn last line; it was ignored", "path", s.Path)
			}
		}
		sc := audit.SinkConfig{Sink: sk, Required: s.Required != nil && *s.Required}
		if len(s.Types) > 0 || len(s.Outcomes) > 0 {
			sc.Filter = &audit.Filter{Types: s.Types, Outcomes: s.Outcomes, Exclude: s.Exclude}
		}
		sinks = append(sinks, sc)
	}
	l, err := audit.NewLog(audit.Options{Sinks: sinks, Now: o.Now, Resume: resume, Logger: o.Logger, FingerprintKey: fp, CheckpointKey: ck, Registerer: reg})
	return l, files, err
}

// spoolResume returns, when there is no unfiltered file record to resume
// the chain from, the newest last event of the unfiltered sinks' spools,
// so that the chain does not restart at seq 1. It runs before the sinks
// open their spools (their senders empty a drained spool).
func spoolResume(cfg *config.Config) (*audit.Event, error) {
	if auditFile(cfg) != "" {
		return nil, nil
	}
	var resume *audit.Event
	for _, s := range cfg.Audit.Sinks {
		if s.SpoolDir == "" || len(s.Types) > 0 || len(s.Outcomes) > 0 {
			continue
		}
		e, err := audit.LastSpooledEvent(s.SpoolDir)
		if err != nil {
			return nil, fmt.Errorf("audit: resume: %w", err)
		}
		if e != nil && (resume == nil || e.Seq > resume.Seq) {
			resume = e
		}
	}
	return resume, nil
}

func buildIdentities(ctx context.Context, cfg *config.Config, d deps, km *keys.Manager) (*identity.Router, error) {
	var vs []identity.IssuerVerifier
	var errs []error
	for i, p := range cfg.IdentityProviders {
		v, err := identityTypes[p.Type](ctx, p, d)
		if err != nil {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("identity_providers[%d]", i), "%v", err))
			continue
		}
		vs = append(vs, v)
	}
	self, err := jwtidp.New(jwtidp.Config{
		Name: "stint", Type: "stint", Issuer: cfg.Server.IssuerURL, Audiences: []string{cfg.Server.IssuerURL},
		Keys: km, Algorithms: []string{"ES256", "EdDSA", "RS256"}, Now: d.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("stint session tokens: %w", err)
	}
	vs = append(vs, self)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return identity.NewRouter(vs...)
}

func buildTargets(ctx context.Context, cfg *config.Config, d deps) (map[string]broker.Target, map[string]issuer.Issuer, map[string]string, error) {
	targets := map[string]broker.Target{}
	issuers := map[string]issuer.Issuer{}
	types := map[string]string{}
	var errs []error
	for i, t := range cfg.Targets {
		is, err := targetTypes[t.Type](ctx, t, d)
		if err != nil {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("targets[%d]", i), "%v", err))
			continue
		}
		roles := map[string]broker.Role{}
		for name, r := range t.Roles {
			roles[name] = broker.Role{DefaultTTL: r.DefaultTTL.D()}
		}
		targets[t.Name] = broker.Target{Name: t.Name, Type: t.Type, Issuer: is, Roles: roles}
		issuers[t.Name] = is
		types[t.Name] = t.Type
	}
	return targets, issuers, types, errors.Join(errs...)
}

// Close releases everything New opened, in reverse order.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.Logger.Warn("close", "err", err)
		}
	}
	a.closers = nil
}

// leaseAdapter presents lease.Manager as broker.Leases.
type leaseAdapter struct{ m *lease.Manager }

func (l leaseAdapter) Issue(ctx context.Context, r broker.LeaseRequest) (core.Lease, core.Credential, error) {
	return l.m.Issue(ctx, lease.IssueRequest{
		Target: r.Target, Role: r.Role, Rule: r.Rule, RequestID: r.Meta.RequestID, Source: r.Meta.Source,
		Principal: r.Principal, Human: r.Human, TTL: r.TTL, MaxTTL: r.MaxTTL, Params: r.Params, Preceding: r.Preceding,
	})
}
func (l leaseAdapter) Renew(ctx context.Context, id string, ttl time.Duration, by core.Principal) (core.Lease, error) {
	return l.m.Renew(ctx, id, ttl, by)
}
func (l leaseAdapter) Revoke(ctx context.Context, x core.Lease) (core.Lease, error) {
	return l.m.RevokeLease(ctx, x)
}
func (l leaseAdapter) ForceRevoke(ctx context.Context, id string) (core.Lease, error) {
	return l.m.ForceRevoke(ctx, id)
}
func (l leaseAdapter) RevokeMatching(ctx context.Context, f store.LeaseFilter) (int, error) {
	return l.m.RevokeMatching(ctx, f)
}
func (l leaseAdapter) Get(ctx context.Context, id string) (core.Lease, error) {
	return l.m.Get(ctx, id)
}
func (l leaseAdapter) List(ctx context.Context, f store.LeaseFilter) ([]core.Lease, error) {
	return l.m.List(ctx, f)
}

// Run serves HTTP (and the admin socket) and runs the reaper until ctx
// ends, then shuts down gracefully. ready, if not nil, is called once the
// listener accepts connections.
func (a *App) Run(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.Config.Server.Listen, err)
	}
	srv := &http.Server{Handler: a.Server, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 3)
	go func() {
		tls := a.Config.Server.TLS
		if tls.CertFile != "" {
			errc <- srv.ServeTLS(ln, tls.CertFile, tls.KeyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	var admin *http.Server
	if sock := a.Config.Server.AdminSocket; sock != "" {
		aln, err := listenUnix(sock)
		if err != nil {
			srv.Close()
			return err
		}
		admin = &http.Server{Handler: a.Server.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- admin.Serve(aln) }()
	}
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() {
		defer close(reaperDone)
		if err := a.Leases.Run(reaperCtx); err != nil {
			a.Logger.Error("lease reaper stopped", "err", err)
		}
	}()
	if ready != nil {
		ready(ln.Addr().String())
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	stopReaper()
	<-reaperDone
	return runErr
}

// listenUnix listens on a socket only its owner can use.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}
