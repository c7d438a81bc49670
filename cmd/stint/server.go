package main

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/devcluster"
)

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func newServerCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "server --config FILE",
		Short: "Run the stint server from a config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("--config is required")
			}
			cfg, err := loadConfig(file)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, nil)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
	return cmd
}

// loadConfig loads, defaults and fully checks a config file.
func loadConfig(file string) (*config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	if err := app.Check(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// serve runs the server until ctx ends; onReady runs once it listens.
func serve(ctx context.Context, cfg *config.Config, onReady func(addr string)) error {
	start := time.Now()
	tuneGC()
	tuneProcs()
	log := newLogger(cfg.Server.LogLevel)
	a, err := app.New(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	defer a.Close()
	// SIGHUP reopens the audit files, after logrotate renamed them.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := a.ReopenAudit(); err != nil {
					log.Error("reopen audit files", "err", err)
				} else {
					log.Info("audit files reopened")
				}
			}
		}
	}()
	return a.Run(ctx, func(addr string) {
		log.Info("stint ready", "addr", addr, "issuer", cfg.Server.IssuerURL, "startup_ms", time.Since(start).Milliseconds())
		if onReady != nil {
			onReady(addr)
		}
	})
}

//go:embed dev.yaml.tmpl
var devConfig string

func newDevCmd(g *globals) *cobra.Command {
	var dir, listen string
	var noAudit bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a demo server on the embedded store with a dev cluster, a dev SSO and a jwt target",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "stint-dev-")
				if err != nil {
					return err
				}
				dir = d
			}
			dir, _ = filepath.Abs(dir)
			if err := devcluster.Init(dir); err != nil {
				return err
			}
			path := filepath.Join(dir, "stint.yaml")
			if err := writeDevConfig(path, dir, listen, !noAudit); err != nil {
				return err
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, func(addr string) { printDevHelp(dir, addr, path) })
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the store, keys and audit log (default: a new temp dir)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8420", "listen address")
	cmd.Flags().BoolVar(&noAudit, "no-audit-sink", false, "send audit events to /dev/null, best-effort, instead of the durable file (only to measure audit's cost)")
	cmd.AddCommand(newDevTokenCmd())
	return cmd
}

func writeDevConfig(path, dir, listen string, auditSink bool) error {
	t := template.Must(template.New("dev").Parse(devConfig))
	var b strings.Builder
	if err := t.Execute(&b, map[string]any{
		"Dir": dir, "Listen": listen, "AuditSink": auditSink,
		"ClusterIssuer": devcluster.ClusterIssuer, "SSOIssuer": devcluster.SSOIssuer,
		"ClusterJWKS": devcluster.JWKSFile(dir, "dev-cluster"), "SSOJWKS": devcluster.JWKSFile(dir, "dev-sso"),
	}); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func printDevHelp(dir, addr, cfgPath string) {
	fmt.Fprintf(os.Stderr, `
stint dev is running on http://%[2]s   (config: %[3]s)

In another shell, try:

  export STINT_ADDR=http://%[2]s STINT_DEV_DIR=%[1]s

  # a workload token from the dev cluster (namespace agents, service account support-bot)
  stint dev token --namespace agents --service-account support-bot > /tmp/sa.jwt

  # exchange it for a stint session token, then for an access token for the demo API
  stint token --identity-token-file /tmp/sa.jwt
  stint token --identity-token-file /tmp/sa.jwt --audience https://api.demo.local --scope orders:read

  # a credential under a lease, on behalf of a human from the dev SSO
  stint dev token --human alice --groups support > /tmp/alice.jwt
  stint creds demo-api/read --identity-token-file /tmp/sa.jwt --on-behalf-of-file /tmp/alice.jwt --ttl 5m

  # a denial: the wrong namespace
  stint dev token --namespace default --service-account web > /tmp/web.jwt
  stint creds demo-api/read --identity-token-file /tmp/web.jwt

  # what policy says and why, the keys, and the tamper-evident audit record
  stint policy test --config %[3]s --identity-token-file /tmp/sa.jwt --grant demo-api/read
  stint audit verify %[1]s/audit.jsonl
  curl -s http://%[2]s/.well-known/jwks.json

`, dir, addr, cfgPath)
}

func newDevTokenCmd() *cobra.Command {
	var dir, ns, sa, human, email string
	var groups []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a demo workload token (dev cluster) or human token (dev SSO)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = os.Getenv("STINT_DEV_DIR")
			}
			if dir == "" {
				return fmt.Errorf("--dir or STINT_DEV_DIR must name the directory `stint dev` printed")
			}
			var tok string
			var err error
			if human != "" {
				tok, err = devcluster.MintHuman(dir, devcluster.Human{User: human, Email: email, Groups: groups, TTL: ttl})
			} else {
				tok, err = devcluster.MintWorkload(dir, devcluster.Workload{Namespace: ns, ServiceAccount: sa, TTL: ttl})
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the directory of `stint dev` (default $STINT_DEV_DIR)")
	cmd.Flags().StringVar(&ns, "namespace", "agents", "service account namespace")
	cmd.Flags().StringVar(&sa, "service-account", "support-bot", "service account name")
	cmd.Flags().StringVar(&human, "human", "", "mint a human's OIDC token for this user instead")
	cmd.Flags().StringVar(&email, "email", "", "the human's email (default USER@example.com)")
	cmd.Flags().StringSliceVar(&groups, "groups", nil, "the human's groups")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	return cmd
}

// tuneProcs gives the server one more P than cores unless GOMAXPROCS is
// set: every durable write (the audit file's and SQLite's fsync) blocks an
// OS thread holding a P until the runtime's monitor hands the P on, and
// with two Ps one fsync idles half the machine meanwhile. On the exchange
// benchmark (2 cores, 16 clients) the spare P took CPU use from ~80 % to
// ~90 % and exchanges/s up by ~15 %.
//
// Under a container CPU limit below the machine's cores (Go then sets
// GOMAXPROCS to that limit) it changes nothing: a spare P there would
// only get the process throttled.
func tuneProcs() {
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) == runtime.NumCPU() {
		runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	}
}

// tuneGC trades memory for CPU unless the operator chose: the request path
// allocates short-lived garbage (JSON, JWTs) over a live heap of a few MB,
// and at the default GOGC=100 collection costs ~30 % of exchange
// throughput. GOGC=1000 measured RSS ~85 MB at full load on 2 cores; the
// 256 MiB soft limit makes the collector work harder rather than grow past
// it. GOGC and GOMEMLIMIT override both.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(1000)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(256 << 20)
	}
}
